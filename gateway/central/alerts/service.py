"""``learnroom alerts``: per-room state from MQTT, rules with durations and hysteresis, and
delivery to Prometheus Alertmanager, the retained ``{p}/alerts/<rule>`` topics and InfluxDB.

Alertmanager does the routing, grouping, silencing and e-mail/webhook/chat; this service only
says which alerts fire (v2 API, ``POST /api/v2/alerts``). Firing alerts are sent again every
``resend_interval_s`` with ``endsAt`` four intervals ahead (as Prometheus does), so an alert
whose sender died resolves by itself; a resolved alert is sent with ``endsAt`` = now until
Alertmanager has taken it.

The retained alert topics are also the service's memory: after a restart it reads them before
its first evaluation and carries on with the same ``startsAt``, so nothing is announced twice
and nothing firing is forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.central.alerts.rules import CHECKS, Finding, RoomState, Tracker, Verdict, evaluate
from gateway.central.config import CentralConfig
from gateway.central.mapping import to_lines
from gateway.central.thresholds import Rules
from gateway.central.validate import Accepted, check
from gateway.central.writers import Writer, writer_from_config
from gateway.config import tls_context
from gateway.models import (
    AlertData,
    EnvironmentData,
    EventData,
    HealthData,
    LockerData,
    StatusData,
    WifiData,
    make_envelope,
)

_LOGGER = logging.getLogger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def alert_key(rule: str, target: str) -> str:
    """The topic level of an alert: the rule, and what it is about when there is more than one."""
    if not target:
        return rule
    return f"{rule}-{_UNSAFE.sub('-', target)}"[:63]


@dataclass
class Room:
    state: RoomState
    trackers: dict[str, Tracker] = field(default_factory=dict)


class AlertmanagerError(ConnectionError):
    pass


def post_alerts(url: str, alerts: list[dict[str, Any]], timeout: float = 10.0) -> None:
    """Alertmanager's v2 API; raises ``AlertmanagerError`` with its answer on failure."""
    request = urllib.request.Request(  # noqa: S310 - configured http(s) URL
        f"{url}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout):  # noqa: S310
            return
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")[:300]
        raise AlertmanagerError(f"Alertmanager answered {exc.code}: {body}") from exc
    except OSError as exc:
        raise AlertmanagerError(f"Alertmanager at {url} unreachable: {exc}") from exc


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AlertService:
    def __init__(
        self,
        config: CentralConfig,
        *,
        writer: Writer | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.config = config
        self.settings = config.alerts
        self.writer = writer
        self.clock = clock
        self.prefix = config.mqtt.prefix
        self.window = config.accept.window()
        self.rooms: dict[tuple[str, str], Room] = {}
        self._started = False
        self._unsent_resolved: list[dict[str, Any]] = []
        self._last_resend = datetime.min.replace(tzinfo=UTC)
        self._client: aiomqtt.Client | None = None
        self.registry = registry or CollectorRegistry()
        self.firing_gauge = Gauge(
            "learnroom_alerts_firing",
            "alerts firing now",
            ["rule", "severity"],
            registry=self.registry,
        )
        self.notifications = Counter(
            "learnroom_alerts_alertmanager_posts",
            "posts to Alertmanager, by result",
            ["result"],
            registry=self.registry,
        )
        self.transitions = Counter(
            "learnroom_alerts_transitions",
            "alerts that started firing or resolved",
            ["rule", "change"],
            registry=self.registry,
        )

    # -- state from MQTT -------------------------------------------------------------------

    def room(self, site: str, room: str) -> Room:
        key = (site, room)
        if key not in self.rooms:
            interval = self.settings.interval_for(site, room)
            self.rooms[key] = Room(RoomState(site, room, interval))
        return self.rooms[key]

    def on_message(self, topic: str, payload: bytes, *, retained: bool = False) -> None:
        result = check(topic, payload, self.prefix, now=self.clock(), window=self.window)
        if not isinstance(result, Accepted):
            return  # the ingest counts what is refused; alerts only need what is valid
        env, sub = result.envelope, result.topic.sub
        now = self.clock()
        if env.kind == "alerts":
            if not self._started:
                self._resume(env.site, env.room, sub or env.data.rule, env.data, env.ts)
            return
        room = self.room(env.site, env.room)
        state = room.state
        # durations run on arrival time (a Pi without a real-time clock may be off); a
        # retained copy handed out at subscribe time is as old as its reading
        at = min(env.ts, now) if retained else now
        state.seen(at)
        data = env.data
        if isinstance(data, StatusData):
            state.online = data.online
        elif isinstance(data, EnvironmentData):
            window = self.settings.rules_for(env.site, env.room).sensor_stuck.window_s
            state.set_environment(data, at, window)
        elif isinstance(data, WifiData):
            state.wifi = data
        elif isinstance(data, LockerData) and sub is not None:
            state.set_locker(sub, data, at)
        elif isinstance(data, HealthData):
            state.set_health(data, at)
        elif isinstance(data, EventData) and data.locker and data.slot:
            slot = (data.locker, data.slot)
            if data.type == "overdue":
                state.overdue[slot] = data.due
            elif data.type == "return":
                state.overdue.pop(slot, None)
        if env.kind != "status" and state.online is False:
            state.online = True  # a reading after the Last Will: it is back

    def _resume(self, site: str, room: str, key: str, data: AlertData, ts: datetime) -> None:
        """A retained alert from before a restart: carry on firing with its ``startsAt``."""
        if data.rule not in CHECKS or not data.firing:
            return
        tracker = Tracker(
            data.rule,
            data.target or "",
            data.severity,
            firing_since=data.since or ts,
            started=data.since or ts,
            bad_since=data.since or ts,
            en=data.message,
            de=data.message_de or data.message,
        )
        self.room(site, room).trackers[key] = tracker
        self.firing_gauge.labels(data.rule, data.severity).inc()
        _LOGGER.info("resuming %s/%s %s, firing since %s", site, room, key, tracker.firing_since)

    # -- evaluation ------------------------------------------------------------------------

    def evaluate(self) -> tuple[list[tuple[Room, str, Tracker]], list[tuple[Room, str, Tracker]]]:
        """One pass over every room; returns the alerts that fired and that resolved."""
        now = self.clock()
        fired: list[tuple[Room, str, Tracker]] = []
        resolved: list[tuple[Room, str, Tracker]] = []
        for (site, room_id), room in list(self.rooms.items()):
            rules = self.settings.rules_for(site, room_id)
            quiet = self.settings.in_maintenance(site, room_id, now)
            seen: set[str] = set()
            for finding in evaluate(room.state, rules, now):
                key = alert_key(finding.rule, finding.target)
                seen.add(key)
                verdict = Verdict.GOOD if quiet else finding.verdict
                self._step(room, rules, key, finding, verdict, now, fired, resolved)
            for key, tracker in list(room.trackers.items()):
                if key not in seen and tracker.firing:
                    # the thing it was about is gone (a locker removed, a rule disabled)
                    gone = Finding(tracker.rule, Verdict.GOOD, tracker.en, tracker.de)
                    self._step(room, rules, key, gone, Verdict.GOOD, now, fired, resolved)
        return fired, resolved

    def _step(
        self,
        room: Room,
        rules: Rules,
        key: str,
        finding: Finding,
        verdict: Verdict,
        now: datetime,
        fired: list[tuple[Room, str, Tracker]],
        resolved: list[tuple[Room, str, Tracker]],
    ) -> None:
        settings = getattr(rules, finding.rule)
        tracker = room.trackers.get(key)
        if tracker is None:
            if verdict is not Verdict.BAD:
                return  # nothing to track
            tracker = Tracker(finding.rule, finding.target, settings.severity)
            room.trackers[key] = tracker
        if verdict is not finding.verdict:
            finding = Finding(finding.rule, verdict, finding.en, finding.de, finding.target)
        change = tracker.step(finding, settings, now)
        if change == "fire":
            fired.append((room, key, tracker))
        elif change == "resolve":
            resolved.append((room, key, tracker))
            del room.trackers[key]
        elif not tracker.firing and tracker.bad_since is None:
            del room.trackers[key]  # back to nothing pending

    # -- delivery --------------------------------------------------------------------------

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
        starts = tracker.started or now
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

    async def deliver(
        self,
        fired: list[tuple[Room, str, Tracker]],
        resolved: list[tuple[Room, str, Tracker]],
    ) -> None:
        now = self.clock()
        lines: list[str] = []
        for room, key, tracker in fired:
            _LOGGER.warning(
                "FIRING %s/%s %s: %s", room.state.site, room.state.room, key, tracker.en
            )
            self.firing_gauge.labels(tracker.rule, tracker.severity).inc()
            self.transitions.labels(tracker.rule, "fired").inc()
            topic, payload = self.envelope(room, key, tracker, firing=True)
            await self._publish(topic, payload)
            lines += self._lines(topic, payload)
        for room, key, tracker in resolved:
            _LOGGER.info("resolved %s/%s %s", room.state.site, room.state.room, key)
            self.firing_gauge.labels(tracker.rule, tracker.severity).dec()
            self.transitions.labels(tracker.rule, "resolved").inc()
            topic, payload = self.envelope(room, key, tracker, firing=False)
            lines += self._lines(topic, payload)
            await self._publish(topic, b"")  # an empty retained message clears the topic
            self._unsent_resolved.append(self.am_alert(room, tracker, resolved_at=now))
        if lines and self.writer is not None:
            try:
                await asyncio.to_thread(self.writer.write, lines)
            except Exception as exc:  # noqa: BLE001 - InfluxDB is a copy; MQTT and AM matter
                _LOGGER.warning("cannot write alert points to InfluxDB: %s", exc)
        await self._post(fired)

    def _lines(self, topic: str, payload: bytes) -> list[str]:
        result = check(topic, payload, self.prefix)
        return to_lines(result.envelope, result.topic.sub) if isinstance(result, Accepted) else []

    async def _publish(self, topic: str, payload: bytes) -> None:
        if self._client is not None:
            await self._client.publish(topic, payload, qos=1, retain=True)

    async def _post(self, fired: list[tuple[Room, str, Tracker]]) -> None:
        url = self.settings.alertmanager_url
        if url is None:
            return
        now = self.clock()
        alerts = list(self._unsent_resolved)
        due = (now - self._last_resend).total_seconds() >= self.settings.resend_interval_s
        if due:
            for room in self.rooms.values():
                alerts += [
                    self.am_alert(room, t, resolved_at=None)
                    for t in room.trackers.values()
                    if t.firing
                ]
        else:
            alerts += [self.am_alert(room, t, resolved_at=None) for room, _, t in fired]
        if not alerts:
            return
        try:
            await asyncio.to_thread(post_alerts, url, alerts)
        except AlertmanagerError as exc:
            self.notifications.labels("failed").inc()
            _LOGGER.warning("%s; trying again at the next evaluation", exc)
            return
        self.notifications.labels("ok").inc()
        self._unsent_resolved.clear()
        if due:
            self._last_resend = now

    # -- running ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        m = self.config.mqtt
        s = self.settings
        if s.metrics_port:
            from prometheus_client import start_http_server  # noqa: PLC0415

            server, _ = start_http_server(s.metrics_port, s.metrics_host, registry=self.registry)
            stop_metrics: Callable[[], None] = server.shutdown
        else:
            stop_metrics = lambda: None  # noqa: E731
        try:
            while not stop.is_set():
                try:
                    await self._session(stop)
                except aiomqtt.MqttError as exc:
                    self._client = None
                    _LOGGER.warning("alerts lost the broker (%s); reconnecting", exc)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), m.reconnect_min_s)
        finally:
            stop_metrics()
            if self.writer is not None:
                self.writer.close()

    async def _session(self, stop: asyncio.Event) -> None:
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
            self._client = client
            await client.subscribe(f"{self.prefix}/#", qos=1)
            _LOGGER.info("alerts subscribed to %s/# on %s", self.prefix, m.host)
            reader = asyncio.create_task(self._read(client))
            try:
                if not self._started:
                    await asyncio.sleep(self.settings.startup_grace_s)
                    self._started = True
                while not stop.is_set():
                    fired, resolved = self.evaluate()
                    await self.deliver(fired, resolved)
                    if reader.done():
                        reader.result()  # raises the broker's error
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.settings.evaluate_interval_s)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
                self._client = None

    async def _read(self, client: aiomqtt.Client) -> None:
        async for msg in client.messages:
            payload = msg.payload
            if isinstance(payload, bytes | bytearray):
                try:
                    self.on_message(str(msg.topic), bytes(payload), retained=msg.retain)
                except Exception:  # a bug in one rule must not stop the others
                    _LOGGER.exception("alerts: cannot handle %s", msg.topic)


def build_service(config: CentralConfig) -> AlertService:
    writer = writer_from_config(config.influx) if config.influx is not None else None
    return AlertService(config, writer=writer)
