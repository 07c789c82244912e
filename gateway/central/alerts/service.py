"""``learnroom alerts``: per-room state from MQTT, rules with durations and hysteresis, and
delivery to Prometheus Alertmanager, the retained ``{p}/alerts/<rule>`` topics and InfluxDB.

Alertmanager does the routing, grouping, silencing and e-mail/webhook/chat; this service only
says which alerts fire (v2 API, ``POST /api/v2/alerts``). Firing alerts are sent again every
``resend_interval_s`` with ``endsAt`` four intervals ahead (as Prometheus does), so an alert
whose sender died resolves by itself; a resolved alert is sent with ``endsAt`` = its
resolution until Alertmanager has taken it (``delivery``).

The retained alert topics are also the service's memory: after a restart it reads them before
its first evaluation and carries on with the same ``startsAt``, so nothing is announced twice
and nothing firing is forgotten.

Three loops run supervised (HA's MQTT client is the model): MQTT, evaluation and Alertmanager
delivery. An exception in one message or one pass is logged once per kind, counted
(``learnroom_alerts_errors_total``) and the loop goes on; a loop that ends or hangs past its
deadline makes ``run`` return 1, so systemd or compose start a fresh process; ``/healthz``
says which loop does what (``health``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.parse
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
from prometheus_client import CollectorRegistry, Counter

from gateway.central.alerts.delivery import (
    AlertmanagerError,
    Backoff,
    Courier,
    in_daemon_thread,
    wait_any,
)
from gateway.central.alerts.evaluation import Evaluator, Room, Transition, alert_key
from gateway.central.alerts.health import LoopHealth, LoopStatus, blocked, serve
from gateway.central.alerts.rules import Tracker
from gateway.central.config import CentralConfig
from gateway.central.mapping import to_lines
from gateway.central.validate import Accepted, check
from gateway.central.writers import Writer, writer_from_config
from gateway.config import tls_context
from gateway.models import AlertData, make_envelope

__all__ = ["AlertService", "AlertmanagerError", "alert_key", "build_service"]

_LOGGER = logging.getLogger(__name__)
LOOPS = ("mqtt", "evaluate", "alertmanager")
#: How far past its own deadline a loop may be before it counts as stuck.
GRACE_S = 10.0
#: The event loop not running for this long is a blocked process; its heartbeat's period.
BLOCKED_S = 30.0
BEAT_S = 1.0
#: Broker answers that need a person, not a retry (MQTT 3.1.1 and 5 codes).
_REFUSED_CODES = {4, 5, 134, 135}


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AlertService(Evaluator):
    def __init__(
        self,
        config: CentralConfig,
        *,
        writer: Writer | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        registry: CollectorRegistry | None = None,
    ) -> None:
        super().__init__(config, clock=clock, registry=registry)
        self.writer = writer
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._beat = time.monotonic()
        self._last_message = 0.0
        self._logged: set[tuple[str, str]] = set()
        self.status = {name: LoopStatus(name) for name in LOOPS}
        self.errors = Counter(
            "learnroom_alerts_errors",
            "exceptions in a loop, which went on",
            ["loop"],
            registry=self.registry,
        )
        url = self.settings.alertmanager_url
        self._courier = None
        if url is not None:
            self._courier = Courier(
                url,
                timeout_s=self.settings.alertmanager_timeout_s,
                resend_s=self.settings.resend_interval_s,
                firing=self._firing,
                status=self.status["alertmanager"],
                registry=self.registry,
                grace_s=GRACE_S,
            )

    # -- what goes out -----------------------------------------------------------------------

    def am_alert(
        self, room: Room, tracker: Tracker, *, resolved_at: datetime | None
    ) -> dict[str, Any]:
        s = self.settings
        site, room_id = room.state.site, room.state.room
        query = urllib.parse.urlencode({"var-site": site, "var-room": room_id})
        link = f"{s.grafana_url}/d/{s.room_dashboard_uid}?{query}"
        labels = {
            "alertname": tracker.rule,
            "rule": tracker.rule,
            "site": site,
            "room": room_id,
            "severity": tracker.severity,
        }
        if tracker.target:
            labels["target"] = tracker.target
        now = self.clock()
        starts = min(tracker.started or now, now)  # never ahead: endsAt follows from it
        ends = resolved_at or now + timedelta(seconds=4 * s.resend_interval_s)
        ends = max(ends, starts + timedelta(milliseconds=1))  # Alertmanager insists
        return {
            "labels": labels,
            "annotations": {
                "summary": tracker.en,
                "summary_de": tracker.de,
                "description": f"{tracker.en} ({site}/{room_id})",
                "dashboard": link,
            },
            "startsAt": _iso(starts),
            "endsAt": _iso(ends),
            "generatorURL": link,
        }

    def envelope(
        self, room: Room, key: str, tracker: Tracker, *, firing: bool
    ) -> tuple[str, bytes]:
        st = room.state
        topic = f"{self.prefix}/{st.site}/{st.room}/alerts/{key}"
        data = AlertData(
            rule=tracker.rule,
            severity=tracker.severity,
            firing=firing,
            message=tracker.en,
            message_de=tracker.de,
            target=tracker.target or None,
            since=tracker.started,
        )
        env = make_envelope(st.site, st.room, data, self.clock(), None)
        return topic, env.model_dump_json(exclude_none=True).encode()

    async def deliver(self, fired: list[Transition], resolved: list[Transition]) -> None:
        """One pass's changes to MQTT (retained), InfluxDB (awaited: a copy, failures only
        logged) and the Alertmanager outbox, which the delivery loop sends."""
        now = self.clock()
        lines: list[str] = []
        courier = self._courier
        for room, key, tracker in fired:
            st = room.state
            _LOGGER.warning("FIRING %s/%s %s: %s", st.site, st.room, key, tracker.en)
            self.firing_gauge.labels(tracker.rule, tracker.severity).inc()
            self.transitions.labels(tracker.rule, "fired").inc()
            topic, payload = self.envelope(room, key, tracker, firing=True)
            await self._publish(topic, payload)
            lines += self._lines(topic, payload)
            if courier is not None:
                courier.fired(
                    (st.site, st.room, key), self.am_alert(room, tracker, resolved_at=None)
                )
        for room, key, tracker in resolved:
            st = room.state
            _LOGGER.info("resolved %s/%s %s", st.site, st.room, key)
            self.firing_gauge.labels(tracker.rule, tracker.severity).dec()
            self.transitions.labels(tracker.rule, "resolved").inc()
            topic, payload = self.envelope(room, key, tracker, firing=False)
            lines += self._lines(topic, payload)
            await self._publish(topic, b"")  # an empty retained message clears the topic
            if courier is not None:
                courier.resolved(
                    (st.site, st.room, key), self.am_alert(room, tracker, resolved_at=now)
                )
        if lines and self.writer is not None:
            try:
                await in_daemon_thread(self.writer.write, lines)
            except Exception as exc:  # noqa: BLE001 - InfluxDB is a copy; MQTT and AM matter
                _LOGGER.warning("cannot write alert points to InfluxDB: %s", exc)

    def _lines(self, topic: str, payload: bytes) -> list[str]:
        result = check(topic, payload, self.prefix)
        return to_lines(result.envelope, result.topic.sub) if isinstance(result, Accepted) else []

    async def _publish(self, topic: str, payload: bytes) -> None:
        """Retained and QoS 1; kept (the newest per topic) for the next pass when the broker
        is away, so a retained topic never stays firing after its alert resolved."""
        self._unpublished.pop(topic, None)
        client = self._client
        if client is None:
            self._unpublished[topic] = payload
            return
        try:
            await client.publish(topic, payload, qos=1, retain=True)
        except aiomqtt.MqttError:
            self._unpublished[topic] = payload

    async def _flush_unpublished(self) -> None:
        for topic, payload in list(self._unpublished.items()):
            if self._client is None:
                return
            await self._publish(topic, payload)

    # -- running -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> int:
        """Serve until ``stop`` (0), or until a loop ends or hangs (1: start a fresh process)."""
        s = self.settings
        server = None
        if s.metrics_port:
            server = serve(
                s.metrics_host, s.metrics_port, self.registry, self.health, name="alerts-metrics"
            )
            _LOGGER.info("metrics on :%d/metrics, health on /healthz", s.metrics_port)
        try:
            return await self._supervise(stop)
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()
            if self.writer is not None:
                self.writer.close()

    async def _supervise(self, stop: asyncio.Event) -> int:
        loops: dict[str, Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = {
            "mqtt": self._mqtt_loop,
            "evaluate": self._evaluate_loop,
            "alertmanager": self._deliver_loop,
        }
        tasks = {n: asyncio.create_task(f(stop), name=f"alerts-{n}") for n, f in loops.items()}
        beat = asyncio.create_task(self._heartbeat(), name="alerts-heartbeat")
        stopper = asyncio.create_task(stop.wait(), name="alerts-stop")
        code = 0
        try:
            while not stop.is_set():
                await asyncio.wait(
                    [stopper, *tasks.values()], timeout=1.0, return_when="FIRST_COMPLETED"
                )
                if stop.is_set():
                    break
                for name, task in tasks.items():
                    if task.done() and not self.status[name].dead:
                        exc = None if task.cancelled() else task.exception()
                        self.status[name].dead = True
                        self.status[name].detail = f"the {name} loop ended: {exc!r:.200}"
                        _LOGGER.critical("the %s loop ended", name, exc_info=exc)
                # the loops' own states; a blocked event loop is /healthz's to say (this
                # check only runs when the loop is not blocked)
                fatal = [h for h in self.loop_health() if h.fatal]
                for h in fatal:
                    _LOGGER.critical(
                        "the %s loop is %s (%s): exiting so that the alert service is started "
                        "again; firing alerts resume from their retained topics",
                        h.loop,
                        h.state,
                        h.detail,
                    )
                if fatal:
                    code = 1
                    break
        finally:
            everything: list[asyncio.Task[Any]] = [*tasks.values(), beat, stopper]
            for task in everything:
                task.cancel()
            await asyncio.gather(*everything, return_exceptions=True)
            self._client = None
        return code

    def health(self) -> list[LoopHealth]:
        """Every loop's state, and the event loop's when it is blocked (``/healthz``)."""
        stuck = blocked(self._beat, BLOCKED_S)
        return [*self.loop_health(), stuck] if stuck else self.loop_health()

    def loop_health(self) -> list[LoopHealth]:
        out = [self.status[name].health(GRACE_S) for name in LOOPS]
        mqtt = out[0]
        if mqtt.state == "connected":
            ago = time.monotonic() - self._last_message
            detail = f"last message {ago:.0f} s ago" if self._last_message else "no messages yet"
            out[0] = LoopHealth("mqtt", ok=True, state="connected", detail=detail)
        return out

    async def _heartbeat(self) -> None:
        while True:
            self._beat = time.monotonic()
            await asyncio.sleep(BEAT_S)

    def _failed(self, loop: str, exc: BaseException) -> None:
        """Count an exception that a loop survived; log each kind once with its traceback."""
        self.errors.labels(loop).inc()
        kind = (loop, type(exc).__name__)
        if kind not in self._logged and len(self._logged) < 100:
            self._logged.add(kind)
            _LOGGER.error(
                "alerts %s loop: %r (counted; further ones only counted)", loop, exc, exc_info=exc
            )

    async def _mqtt_loop(self, stop: asyncio.Event) -> None:
        m = self.config.mqtt
        st = self.status["mqtt"]
        backoff = Backoff(min_s=m.reconnect_min_s, max_s=max(m.reconnect_min_s, 30.0))
        down = False
        while not stop.is_set():
            st.set("connecting", f"{m.host}:{m.effective_port}")
            try:
                await self._session(backoff)
            except aiomqtt.MqttError as exc:
                self._client = None
                self._connected.clear()
                code = getattr(getattr(exc, "rc", None), "value", getattr(exc, "rc", None))
                if not down:
                    _LOGGER.warning("alerts lost the broker (%s); reconnecting", exc)
                    down = True
                delay = backoff.next_delay()
                st.set("reconnecting", f"{exc}; next try in {delay:.0f} s")
                st.refused = code in _REFUSED_CODES
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
            else:
                down = False

    async def _session(self, backoff: Backoff) -> None:
        m = self.config.mqtt
        v5 = m.protocol == "5"
        async with aiomqtt.Client(
            m.host,
            m.effective_port,
            identifier=f"{self.settings.client_id}",
            username=m.username,
            password=m.password,
            tls_context=tls_context(m),
            keepalive=m.keepalive_s,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
        ) as client:
            await client.subscribe(f"{self.prefix}/#", qos=1)
            self._client = client
            self._connected.set()
            backoff.reset()
            self.status["mqtt"].set("connected", m.host)
            _LOGGER.info("alerts subscribed to %s/# on %s", self.prefix, m.host)
            async for msg in client.messages:
                self._last_message = time.monotonic()
                payload = msg.payload
                try:
                    if isinstance(payload, bytes | bytearray):
                        self.on_message(str(msg.topic), bytes(payload), retained=msg.retain)
                except Exception as exc:  # noqa: BLE001 - one message must not stop the others
                    self._failed("mqtt", exc)

    async def _evaluate_loop(self, stop: asyncio.Event) -> None:
        s = self.settings
        st = self.status["evaluate"]
        #: a pass includes the InfluxDB copy, whose writer retries by itself
        pass_s = 300.0 + 10 * s.evaluate_interval_s
        while not stop.is_set():
            if not self._connected.is_set():
                st.set("waiting", "for the broker: no evaluation without fresh state")
                await wait_any(stop, None, self._connected)
                continue
            if not self._started:
                st.set("starting", "reading retained alerts", within=s.startup_grace_s + 5)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), s.startup_grace_s)
                self._started = True
                continue
            st.set("evaluating", f"{len(self.rooms)} rooms", within=pass_s)
            try:
                await self._flush_unpublished()
                await self.deliver(*await self.evaluate_yielding())
            except Exception as exc:  # noqa: BLE001 - the next pass may well succeed
                self._failed("evaluate", exc)
            p = self.last_pass
            detail = f"last pass: {p.rooms} of {len(self.rooms)} rooms in {p.took_s * 1000:.0f} ms"
            st.set("waiting", detail, within=s.evaluate_interval_s + 5)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), s.evaluate_interval_s)

    async def _deliver_loop(self, stop: asyncio.Event) -> None:
        courier = self._courier
        if courier is None:
            self.status["alertmanager"].set("disabled", "no alertmanager_url: MQTT and InfluxDB")
            await stop.wait()
            return
        while not stop.is_set():
            try:
                await courier.run(stop)
            except Exception as exc:  # noqa: BLE001 - a bug in one batch must not end delivery
                self._failed("alertmanager", exc)
                courier.owed = True
                await wait_any(stop, courier.backoff.next_delay())

    async def _firing(self) -> list[dict[str, Any]]:
        """Every firing alert as Alertmanager takes it; gives way to messages now and then."""
        out: list[dict[str, Any]] = []
        for i, room in enumerate(list(self.rooms.values())):
            out += [
                self.am_alert(room, t, resolved_at=None) for t in room.trackers.values() if t.firing
            ]
            if i % 256 == 255:
                await asyncio.sleep(0)
        return out


def build_service(config: CentralConfig) -> AlertService:
    writer = writer_from_config(config.influx) if config.influx is not None else None
    return AlertService(config, writer=writer)
