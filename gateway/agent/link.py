"""The gateway's link to the broker: connect, announce, drain the outbox, reconnect.

aiomqtt has no reconnect of its own, so this module owns the loop (as aiomqtt's docs and Home
Assistant's ``client.py`` do): capped, jittered backoff on network errors; bad credentials are
said once and retried only every ``auth_retry_s``, because the broker's operator may fix the
password file without anyone touching the Pi, and the outbox keeps every reading meanwhile.

Order after each connect (DESIGN.md "MQTT topics"):
1. the birth message (``status`` online, retained), through the outbox so it gets a ``seq``;
2. the current state: the newest message of every retained topic, retained;
3. the backlog, oldest first, **not** retained, paced at ``replay_rate`` after a random delay,
   so that hundreds of rooms coming back together do not flood the broker;
messages committed after the connect go out at once, retained where their kind is.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiomqtt
from paho.mqtt.reasoncodes import ReasonCode

from gateway.agent.config import OutboxSection
from gateway.agent.outbox import Outbox, Row
from gateway.config import MqttSection, tls_context
from gateway.errors import BrokerAuthError

_LOGGER = logging.getLogger(__name__)

#: CONNACK codes that mean "your credentials are wrong" (3.1.1: 4, 5; MQTT 5: 0x86, 0x87, 0x8C).
_AUTH_CODES = frozenset({4, 5, 134, 135, 140})
_PAGE = 256


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes


@dataclass
class LinkStats:
    connects: int = 0
    published: int = 0
    auth_failures: int = 0
    connected: bool = False


class _QuietPending(logging.Filter):
    """aiomqtt warns on every publish beyond ten in flight; our window is deliberate."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pending publish calls" not in record.getMessage()


_MQTT_LOGGER = logging.getLogger("gateway.agent.link.mqtt")
_MQTT_LOGGER.addFilter(_QuietPending())


def _leaves(group: BaseExceptionGroup[aiomqtt.MqttError]) -> list[aiomqtt.MqttError]:
    out: list[aiomqtt.MqttError] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            out.extend(_leaves(exc))
        else:
            out.append(exc)
    return out


def is_auth_error(exc: aiomqtt.MqttError) -> bool:
    rc = getattr(exc, "rc", None)
    value = rc.value if isinstance(rc, ReasonCode) else rc
    return isinstance(value, int) and value in _AUTH_CODES


class _Pacer:
    """Token bucket: at most ``rate`` messages a second, bursts of up to one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._tokens = 1.0
        self._last = time.monotonic()

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return
            await asyncio.sleep((1.0 - self._tokens) / self.rate)


class MqttLink:
    """Drains ``outbox`` into the broker for as long as it runs."""

    def __init__(
        self,
        settings: MqttSection,
        outbox: Outbox,
        outbox_settings: OutboxSection,
        *,
        client_id: str,
        will: Callable[[], Will],
        birth: Callable[[], None],
        new_rows: asyncio.Event,
        acked: Callable[[], None],
        resolve_host: Callable[[], Awaitable[tuple[str, int]]] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.outbox = outbox
        self.outbox_settings = outbox_settings
        self.client_id = client_id
        self.will = will
        self._birth = birth
        self._new_rows = new_rows
        self._acked = acked
        self._resolve_host = resolve_host
        self._rng = rng or random.Random()
        self.stats = LinkStats()
        self._client: aiomqtt.Client | None = None

    async def _target(self) -> tuple[str, int]:
        if self._resolve_host is not None:
            return await self._resolve_host()
        return self.settings.host, self.settings.effective_port

    def _client_for(self, host: str, port: int) -> aiomqtt.Client:
        s = self.settings
        will = self.will()  # fixed at connect time, so its ts says when we came online
        return aiomqtt.Client(
            host,
            port,
            identifier=self.client_id,
            username=s.username,
            password=s.password,
            keepalive=s.keepalive_s,
            protocol=aiomqtt.ProtocolVersion.V5
            if s.protocol == "5"
            else aiomqtt.ProtocolVersion.V311,
            will=aiomqtt.Will(will.topic, will.payload, qos=1, retain=True),
            tls_context=tls_context(s),
            timeout=15,
            max_inflight_messages=self.outbox_settings.inflight,
            logger=_MQTT_LOGGER,
        )

    async def run(self) -> None:
        """Connect, drain, reconnect: returns only when cancelled."""
        s = self.settings
        delay = s.reconnect_min_s
        said_down = False
        while True:
            try:
                host, port = await self._target()
                async with self._client_for(host, port) as client:
                    self._client = client
                    self.stats.connects += 1
                    self.stats.connected = True
                    _LOGGER.info("connected to broker %s:%d as %s", host, port, self.client_id)
                    said_down = False
                    delay = s.reconnect_min_s
                    await self._session(client)
            except (aiomqtt.MqttError, LookupError, OSError) as exc:
                self.stats.connected = False
                self._client = None
                if isinstance(exc, aiomqtt.MqttError) and is_auth_error(exc):
                    self.stats.auth_failures += 1
                    if self.stats.auth_failures == 1:
                        err = BrokerAuthError(
                            f"broker refused user {s.username!r} ({exc}): check mqtt.username and "
                            "mqtt.password (or LEARNROOM_MQTT_PASSWORD) and the broker's password "
                            f"file and ACL; trying again every {s.auth_retry_s:.0f} s"
                        )
                        _LOGGER.error("%s", err)  # noqa: TRY400 - said once, no traceback needed
                    await asyncio.sleep(s.auth_retry_s)
                    continue
                if not said_down:
                    _LOGGER.warning(
                        "broker %s:%s unreachable (%s); keeping readings in the outbox and "
                        "retrying",
                        s.host,
                        s.effective_port,
                        exc,
                    )
                    said_down = True
                wait = self._rng.uniform(delay / 2, delay)
                delay = min(delay * 2, s.reconnect_max_s)
                await asyncio.sleep(wait)
            finally:
                self.stats.connected = False
                self._client = None

    async def _session(self, client: aiomqtt.Client) -> None:
        self._birth()  # commits the birth message; it is the newest status row now
        mark = self.outbox.committed_seq
        window = asyncio.Semaphore(self.outbox_settings.inflight)
        try:
            await self._drain(client, mark, window)
        except* aiomqtt.MqttError as group:
            # a dropped connection fails several publishes at once: one error is the story
            raise _leaves(group)[0] from None

    async def _drain(self, client: aiomqtt.Client, mark: int, window: asyncio.Semaphore) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._watch(client), name="mqtt-watch")
            current = self.outbox.latest_live(mark)
            # the birth first, then the rest of the present state
            current.sort(key=lambda r: (not r.topic.endswith("/status"), r.seq))
            for row in current:
                await self._send(tg, window, client, row, retain=True)
            sent = {r.seq for r in current}
            tg.create_task(self._live(tg, window, client, mark), name="mqtt-live")
            tg.create_task(self._backlog(tg, window, client, mark, sent), name="mqtt-backlog")

    async def _watch(self, client: aiomqtt.Client) -> None:
        # aiomqtt's message iterator is the public way to learn that the connection dropped.
        async for _ in client.messages:
            pass

    async def _send(
        self,
        tg: asyncio.TaskGroup,
        window: asyncio.Semaphore,
        client: aiomqtt.Client,
        row: Row,
        *,
        retain: bool,
    ) -> None:
        await window.acquire()
        tg.create_task(self._publish(window, client, row, retain=retain))

    async def _publish(
        self, window: asyncio.Semaphore, client: aiomqtt.Client, row: Row, *, retain: bool
    ) -> None:
        try:
            await client.publish(row.topic, row.payload, qos=1, retain=retain, timeout=30)
        finally:
            window.release()
        self.outbox.ack(row.seq)
        self.stats.published += 1
        self._acked()

    async def _live(
        self, tg: asyncio.TaskGroup, window: asyncio.Semaphore, client: aiomqtt.Client, after: int
    ) -> None:
        while True:
            self._new_rows.clear()
            rows = self.outbox.rows_after(after, self.outbox.committed_seq, _PAGE)
            for row in rows:
                await self._send(tg, window, client, row, retain=row.live)
                after = row.seq
            if len(rows) < _PAGE:
                await self._new_rows.wait()

    async def _backlog(
        self,
        tg: asyncio.TaskGroup,
        window: asyncio.Semaphore,
        client: aiomqtt.Client,
        upto: int,
        skip: set[int],
    ) -> None:
        first = [r for r in self.outbox.rows_after(-1, upto, _PAGE) if r.seq not in skip]
        if not first and len(self.outbox.rows_after(-1, upto, _PAGE)) < _PAGE:
            return
        jitter = self.outbox_settings.replay_jitter_s
        await asyncio.sleep(self._rng.uniform(0, jitter) if jitter else 0)
        pacer = _Pacer(self.outbox_settings.replay_rate)
        after = -1
        replayed = 0
        while True:
            rows = self.outbox.rows_after(after, upto, _PAGE)
            if not rows:
                break
            for row in rows:
                after = row.seq
                if row.seq in skip or self.outbox.is_acked(row.seq):
                    continue
                await pacer.take()
                await self._send(tg, window, client, row, retain=False)
                replayed += 1
        if replayed:
            _LOGGER.info("replayed %d messages from the outbox", replayed)

    async def publish_now(
        self, topic: str, payload: bytes, *, retain: bool, timeout: float
    ) -> bool:
        """Best-effort direct publish (the goodbye on a clean stop); False if not connected."""
        client = self._client
        if client is None:
            return False
        try:
            await client.publish(topic, payload, qos=1, retain=retain, timeout=timeout)
        except aiomqtt.MqttError:
            return False
        return True
