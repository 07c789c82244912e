"""The gateway's link to the broker: connect, announce, drain the outbox, reconnect.

aiomqtt has no reconnect of its own, so this module owns the loop (as aiomqtt's docs and Home
Assistant's ``client.py`` do). Why it decides the way it does:

- **Errors are classified where they arise, by type, not by number.** Only a refused CONNACK
  (``MqttConnectError``, raised by the connect alone) for credentials or authorisation waits
  ``auth_retry_s``, said once: the broker's operator may fix the password file without anyone
  touching the Pi, and the outbox keeps every reading meanwhile. Anything else (paho's own "not
  connected" 4 on a publish after the broker closed, a reset, a timeout, another refusal such
  as "server unavailable") is a dropped connection with capped, jittered backoff. Paho's error
  numbers and CONNACK codes overlap (4 is both), so a number alone says nothing.
- **Only a healthy connection resets the backoff**: one that stayed up ``healthy_after_s``. A
  broker that accepts and closes at once would otherwise get a connect a second. While it
  flaps, a birth that never reached the broker is sent again instead of a new one being queued:
  at most one unsent birth in the outbox.
- **A twin gateway** (a cloned SD card, a copied config: two processes with our client id) is
  not fought. Evidence: with MQTT 5 the broker's DISCONNECT "Session taken over" (0x8E), which
  reaches a live client only if another one connected with its id. MQTT 3.1.1 gives no reason,
  and Mosquitto 2.0 closes a taken-over MQTT 5 connection without one too, so the heuristic:
  ``_TWIN_SUSPECTS`` connections within ``_TWIN_WINDOW_S`` that the broker accepted,
  acknowledged a message on, and then closed without a word before they were healthy (a broker
  doing that three times in ten minutes is rarer than a clone; one that never acknowledges, or
  says why it closes, is not counted). Then the link reports the fault ``twin_gateway`` (logged
  once, listed in ``health.faults``) and waits ``twin_backoff_s`` (jittered) after each drop,
  so the twins take the session from each other a few times an hour instead of every second.
  A session that outlives twice that wait clears the fault: nobody took it over.

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
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import aiomqtt
from aiomqtt.exceptions import MqttConnectError  # raised by the connect alone; not re-exported
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from gateway.agent.config import OutboxSection
from gateway.agent.lastword import say_offline
from gateway.agent.mqttclient import Client
from gateway.agent.outbox import Outbox, Row
from gateway.config import MqttSection, tls_context
from gateway.errors import BrokerAuthError

_LOGGER = logging.getLogger(__name__)

#: Refused CONNACKs that trying again soon cannot fix: bad user name or password (0x86), not
#: authorised (0x87), banned (0x8A), bad authentication method (0x8C). paho reports MQTT 3.1.1
#: return codes 4 and 5 as 0x86 and 0x87; the raw 3.1.1 numbers count where they come unconverted.
_AUTH_REASONS = frozenset({0x86, 0x87, 0x8A, 0x8C})
_AUTH_RETURN_CODES_V311 = frozenset({4, 5})
#: MQTT 5 DISCONNECT reason: another client connected with our id.
_SESSION_TAKEN_OVER = 0x8E
#: "Unspecified error": what paho reports when the socket closed without a DISCONNECT (and not
#: for a missed keepalive, 0x8D, or a broker shutting down, 0x8B).
_CLOSED_SILENTLY = 0x80
#: Twin heuristic where the broker says nothing: this many silent early closes in this window.
_TWIN_SUSPECTS = 3
_TWIN_WINDOW_S = 600.0
#: The ``health.faults`` entry of a twin gateway (the alert service has a rule for it).
TWIN_FAULT = "twin_gateway"
_PAGE = 256

Failure = Literal["auth", "dropped", "unreachable", "taken-over"]


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes


@dataclass
class LinkStats:
    connects: int = 0
    published: int = 0
    auth_failures: int = 0
    #: Connections that were up and ended (any cause); of them, taken over by a twin.
    drops: int = 0
    takeovers: int = 0
    connected: bool = False
    twin: bool = False
    #: The latest waits before reconnecting and why, newest last (bounded).
    waits: deque[tuple[Failure, float]] = field(default_factory=lambda: deque(maxlen=32))


@dataclass
class _Session:
    """One accepted connection: when it began and how many PUBACKs there were before it."""

    started: float
    published_before: int


class _QuietPending(logging.Filter):
    """aiomqtt warns on every publish beyond ten in flight; our window is deliberate."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        # a drop is said once by the link; aiomqtt's word on each disconnect adds nothing
        return "pending publish calls" not in message and "gracefully disconnect" not in message


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


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def is_auth_error(exc: BaseException) -> bool:
    """A CONNACK refusal for credentials or authorisation: only ``MqttConnectError`` is one.

    aiomqtt raises it from the connect alone; every error of a live connection (a publish
    failing with paho's "not connected" 4, a drop) is another type, whatever its number.
    """
    if not isinstance(exc, MqttConnectError):
        return False
    rc = exc.rc
    if isinstance(rc, ReasonCode):
        return rc.value in _AUTH_REASONS
    return rc in _AUTH_RETURN_CODES_V311


def disconnect_reason(exc: BaseException) -> ReasonCode | None:
    """Why paho says the connection ended; aiomqtt chains it as the cause of what it raises."""
    for cur in _chain(exc):
        rc = getattr(cur, "rc", None)
        if (
            isinstance(cur, aiomqtt.MqttCodeError)
            and isinstance(rc, ReasonCode)
            and rc.packetType == PacketTypes.DISCONNECT
        ):
            return rc
    return None


def _still_cancelled() -> None:
    """Re-raise a cancellation that an error swallowed.

    Python 3.11's ``asyncio.wait_for`` (inside aiomqtt's connect) returns the inner result when
    a CONNACK and a cancel arrive together: the refusal is raised, the cancel lost, and the
    link would go on reconnecting while the agent waits for it to stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _log_fault(name: str, problem: str | None) -> None:
    if problem is not None:
        _LOGGER.warning("%s: %s", name, problem)
    else:
        _LOGGER.info("%s is well again", name)


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
        birth: Callable[[], int],
        new_rows: asyncio.Event,
        acked: Callable[[], None],
        fault: Callable[[str, str | None], None] = _log_fault,
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
        self._fault = fault
        self._resolve_host = resolve_host
        self._rng = rng or random.Random()
        self.stats = LinkStats()
        self._client: aiomqtt.Client | None = None
        self._delay = settings.reconnect_min_s
        self._said_down = False
        self._said_auth = False
        self._birth_seq: int | None = None
        self._suspects: deque[float] = deque(maxlen=_TWIN_SUSPECTS)
        #: Set by the agent once its goodbye is delivered: no last word needed (lastword.py).
        self.clean_stop = False

    async def _target(self) -> tuple[str, int]:
        if self._resolve_host is not None:
            return await self._resolve_host()
        return self.settings.host, self.settings.effective_port

    def _client_for(self, host: str, port: int) -> aiomqtt.Client:
        s = self.settings
        will = self.will()  # fixed at connect time, so its ts says when we came online
        return Client(
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

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    async def run(self) -> None:
        """Connect, drain, reconnect: returns only when cancelled."""
        while True:
            session: _Session | None = None
            try:
                host, port = await self._target()
                async with self._client_for(host, port) as client:
                    session = _Session(self._now(), self.stats.published)
                    self._client = client
                    self.stats.connects += 1
                    self.stats.connected = True
                    self._said_auth = False
                    _LOGGER.info("connected to broker %s:%d as %s", host, port, self.client_id)
                    try:
                        await self._session(client, session)
                    except BaseException as exc:
                        if not (isinstance(exc, aiomqtt.MqttError) or self.clean_stop):
                            will = self.will()  # no DISCONNECT discards the Will unsaid
                            await say_offline(client, will.topic, will.payload, repr(exc))
                        raise
            except (aiomqtt.MqttError, LookupError, OSError) as exc:
                _still_cancelled()
                kind, wait = self._after(exc, session)
            else:  # pragma: no cover - a session ends only by an error or cancellation
                kind, wait = "dropped", self._backoff()
            finally:
                self.stats.connected = False
                self._client = None
            self.stats.waits.append((kind, wait))
            await asyncio.sleep(wait)

    def _after(self, exc: BaseException, session: _Session | None) -> tuple[Failure, float]:
        """Classify a failure where it arose and say how long to wait before the next try."""
        s = self.settings
        if session is None:
            if is_auth_error(exc):
                self.stats.auth_failures += 1
                if not self._said_auth:
                    err = BrokerAuthError(
                        f"broker refused user {s.username!r} ({exc}): check mqtt.username and "
                        "mqtt.password (or LEARNROOM_MQTT_PASSWORD) and the broker's password "
                        f"file and ACL; trying again every {s.auth_retry_s:.0f} s"
                    )
                    _LOGGER.error("%s", err)  # said once, no traceback needed
                    self._said_auth = True
                return "auth", s.auth_retry_s
            # a broker that was really away explains the closes before: a twin's broker is up
            # and takes the next connection at once (a restarted broker is not a twin)
            self._suspects.clear()
            self._say_down("unreachable", exc)
            return "unreachable", self._backoff()
        self.stats.drops += 1
        kind: Failure = "dropped"
        reason = disconnect_reason(exc)
        if reason is not None and reason.value == _SESSION_TAKEN_OVER:
            kind = "taken-over"
            self.stats.takeovers += 1
            self._twin_found("the broker said 'Session taken over'")
        elif self._suspicious(session, reason):
            self._suspects.append(self._now())
            if len(self._suspects) == _TWIN_SUSPECTS and (
                self._suspects[-1] - self._suspects[0] <= _TWIN_WINDOW_S
            ):
                self._twin_found(
                    f"the broker closed {_TWIN_SUSPECTS} connections soon after accepting them"
                )
        self._say_down("closed the connection", exc)
        if self.stats.twin:
            top = s.twin_backoff_s
            return kind, self._rng.uniform(top / 2, top)
        return kind, self._backoff()

    def _suspicious(self, session: _Session, reason: ReasonCode | None) -> bool:
        """The broker accepted us, took a message, and closed without a word before long."""
        return (
            reason is not None
            and reason.value == _CLOSED_SILENTLY
            and self.stats.published > session.published_before
            and self._now() - session.started < self.settings.healthy_after_s
        )

    def _twin_found(self, evidence: str) -> None:
        if self.stats.twin:
            return
        self.stats.twin = True
        top = self.settings.twin_backoff_s
        self._fault(
            TWIN_FAULT,
            f"another gateway is using client id {self.client_id} ({evidence}): a cloned SD "
            "card or a copied config? Give each gateway its own room.site/room.room; until "
            f"then this one reconnects only every {top / 2:.0f}-{top:.0f} s",
        )

    def _say_down(self, what: str, exc: BaseException) -> None:
        if self._said_down:
            return
        s = self.settings
        _LOGGER.warning(
            "broker %s:%s %s (%s); keeping readings in the outbox and retrying",
            s.host,
            s.effective_port,
            what,
            exc,
        )
        self._said_down = True

    def _backoff(self) -> float:
        wait = self._rng.uniform(self._delay / 2, self._delay)
        self._delay = min(self._delay * 2, self.settings.reconnect_max_s)
        return wait

    async def _settle(self) -> None:
        """A connection that stays up is healthy: back to quick reconnects, and no twin."""
        s = self.settings
        await asyncio.sleep(s.healthy_after_s)
        self._delay = s.reconnect_min_s
        self._said_down = False
        if self.stats.twin:
            await asyncio.sleep(max(2 * s.twin_backoff_s - s.healthy_after_s, 0.0))
            self.stats.twin = False
            self._suspects.clear()
            self._fault(TWIN_FAULT, None)

    def _birth_waiting(self) -> bool:
        """The last birth never reached the broker: it is still the newest status row and
        goes out first again; a new one each time would pile up while a broker flaps."""
        seq = self._birth_seq
        return (
            seq is not None
            and not self.outbox.is_acked(seq)
            and bool(self.outbox.rows_after(seq - 1, seq, 1))
        )

    async def _session(self, client: aiomqtt.Client, session: _Session) -> None:
        if not self._birth_waiting():
            self._birth_seq = self._birth()  # committed: the newest status row now
        mark = self.outbox.visible_seq
        window = asyncio.Semaphore(self.outbox_settings.inflight)
        try:
            await self._drain(client, mark, window)
        except* aiomqtt.MqttError as group:
            # a dropped connection fails several publishes at once: one error is the story,
            # the one that carries the broker's reason if any does
            leaves = _leaves(group)
            told = [e for e in leaves if disconnect_reason(e) is not None]
            story = (told or leaves)[0]
            raise story from story.__cause__  # keeps paho's reason, which ``_after`` reads

    async def _drain(self, client: aiomqtt.Client, mark: int, window: asyncio.Semaphore) -> None:
        async with asyncio.TaskGroup() as tg:
            watch = tg.create_task(self._watch(client), name="mqtt-watch")
            tg.create_task(self._settle(), name="mqtt-settle")
            # (the newest of a topic acknowledged already is what the broker retains)
            current = [r for r in self.outbox.latest_live(mark) if not self.outbox.is_acked(r.seq)]
            # the birth first, then the rest of the present state
            current.sort(key=lambda r: (not r.topic.endswith("/status"), r.seq))
            for row in current:
                await self._send(tg, window, client, row, retain=True)
            sent = {r.seq for r in current}
            tg.create_task(self._live(tg, window, client, mark), name="mqtt-live")
            tg.create_task(self._backlog(tg, window, client, mark, sent), name="mqtt-backlog")
            # The body waits as long as the group runs: Python 3.11's TaskGroup, when a task
            # fails after the body has ended, leaves this task counted as cancelling (fixed in
            # 3.12), and ``_still_cancelled`` would then take a drop for a stop.
            await watch

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
            rows = self.outbox.rows_after(after, self.outbox.visible_seq, _PAGE)
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
