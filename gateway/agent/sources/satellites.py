"""Satellites: ESPHome nodes on the gateway's local Mosquitto, reported as the room's readings.

This module is the MQTT side (subscribe, reconnect, report through the sink); what the nodes
send and how it maps into environment, lockers and occupancy is ``esphome.SatelliteMap``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import ssl
from collections import Counter
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

import aiomqtt

from gateway.agent.config import SatellitesSection
from gateway.agent.link import is_auth_error
from gateway.agent.sources.base import Sink
from gateway.agent.sources.esphome import SatelliteMap
from gateway.clock import Clock
from gateway.models import EventData, LockerData

__all__ = ["SatelliteMap", "SatellitesSource"]

_LOGGER = logging.getLogger(__name__)


# -- the source ---------------------------------------------------------------------------------

#: After the broker refused our credentials, try again this rarely (the operator may fix them).
_AUTH_RETRY_S: Final = 300.0


class SatellitesSource:
    """Subscribes to the local broker and reports the satellites' readings through the sink.

    Environment at every ``interval_s`` (values drift continuously; every node update would
    multiply messages without adding information); lockers and occupancy also at once on a
    change (a door or a checkout is what people wait to see), coalesced over ``min_gap_s``.
    """

    name = "satellites"

    def __init__(
        self,
        config: SatellitesSection,
        capacity: int,
        interval_s: float,
        clock: Clock,
        tz: ZoneInfo,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.interval_s = interval_s
        self.clock = clock
        self.map = SatelliteMap(config, clock, capacity, tz)
        self.min_gap_s = 0.5
        self._rng = rng or random.Random()
        self._changed = asyncio.Event()
        #: set while subscribed to the local broker (tests publish only after this)
        self.subscribed = asyncio.Event()
        self.connects = 0
        self._broker_problem: str | None = None

    # -- for the health source -------------------------------------------------------------------
    def faults(self) -> list[str]:
        """Silent or offline nodes (and problem sensors) as ``satellite:<node>[:<object_id>]``."""
        return self.map.faults()

    @property
    def rejected(self) -> Counter[str]:
        return self.map.rejected

    # -- run --------------------------------------------------------------------------------------
    async def run(self, sink: Sink) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._connection(), name="satellites-mqtt")
            tg.create_task(self._report(sink), name="satellites-report")

    def _client(self) -> aiomqtt.Client:
        host, port, tls, user, password = self.config.endpoint
        return aiomqtt.Client(
            host,
            port,
            identifier=self.config.client_id,
            username=user,
            password=password,
            tls_context=ssl.create_default_context() if tls else None,
            keepalive=30,
            timeout=15,
        )

    async def _connection(self) -> None:
        """Subscribe and take messages; reconnect with capped, jittered backoff."""
        delay, said_down, auth_said = 1.0, False, False
        host, port, *_ = self.config.endpoint
        while True:
            try:
                async with self._client() as client:
                    await self._subscribe(client)
                    self.connects += 1
                    _LOGGER.info("satellites: subscribed on %s:%d", host, port)
                    self._broker_problem = None
                    self._changed.set()
                    delay, said_down, auth_said = 1.0, False, False
                    async for message in client.messages:
                        await self._take(client, message)
            except aiomqtt.MqttError as exc:
                self.subscribed.clear()
                if is_auth_error(exc):
                    self._broker_problem = f"local broker refused user {self.config.endpoint[3]!r}"
                    if not auth_said:
                        _LOGGER.error(  # noqa: TRY400 - said once, no traceback needed
                            "satellites: %s (%s); check satellites.username/password and the "
                            "local broker's password file; trying again every %.0f s",
                            self._broker_problem,
                            exc,
                            _AUTH_RETRY_S,
                        )
                        auth_said = True
                    self._changed.set()
                    await asyncio.sleep(_AUTH_RETRY_S)
                    continue
                self._broker_problem = f"local broker {host}:{port} unreachable"
                self._changed.set()
                if not said_down:
                    _LOGGER.warning("satellites: %s (%s); retrying", self._broker_problem, exc)
                    said_down = True
                await asyncio.sleep(self._rng.uniform(delay / 2, delay))
                delay = min(delay * 2, self.config.reconnect_max_s)

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        await client.subscribe(f"{self.config.discovery_prefix}/+/+/+/config", qos=1)
        await client.subscribe(self.config.topic_filter, qos=1)
        # topics discovery named outside the filter (a custom state_topic)
        extra = {
            t
            for node in self.map.nodes.values()
            for t in [node.availability_topic, *(e.state_topic for e in node.entities.values())]
            if t and not aiomqtt.Topic(t).matches(self.config.topic_filter)
        }
        for topic in sorted(extra):
            await client.subscribe(topic, qos=1)
        self.subscribed.set()

    async def _take(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        more = self.map.handle(message.topic.value, bytes(message.payload), bool(message.retain))
        for topic in more:
            await client.subscribe(topic, qos=1)
        self._changed.set()

    async def _report(self, sink: Sink) -> None:
        last_all = -math.inf
        sent: dict[str, Any] = {}
        while True:
            now = self.clock.monotonic()
            due = now - last_all >= self.interval_s
            if self.map.maybe_reset() and "occupancy" in self.config.readings:
                sink.emit(EventData(type="people_reset", detail="nightly reset of the door count"))
            self._emit(sink, sent, due=due)
            if due:
                last_all = now
            problems = [p for p in (self._broker_problem, self.map.problems()) if p]
            sink.fault(self.name, "; ".join(problems) if problems else None)
            wait = self.interval_s - (self.clock.monotonic() - last_all)
            for soon in (self.map.next_silence_in(), self.map.hold_remaining()):
                if soon is not None:
                    wait = min(wait, soon + 0.01)
            await self._wait(max(wait, 0.0))

    async def _wait(self, seconds: float) -> None:
        """Until a message changed something (then a short gap to take a burst) or the time."""
        self._changed.clear()
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        waker = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
        if waker.done() and not waker.cancelled():
            await self.clock.sleep(self.min_gap_s)

    def _emit(self, sink: Sink, sent: dict[str, Any], *, due: bool) -> None:
        readings = self.config.readings
        env = self.map.environment() if "environment" in readings else None
        if env is not None and (due or "environment" not in sent):
            sink.emit(env)
            sent["environment"] = env
        if "lockers" in readings:
            for locker, data in self.map.lockers().items():
                key = f"lockers/{locker}"
                before = sent.get(key)
                if due or data != before:
                    if isinstance(before, LockerData):
                        self._locker_events(sink, locker, before, data)
                    sink.emit(data, locker)
                    sent[key] = data
        occ = self.map.occupancy() if "occupancy" in readings else None
        if occ is not None and (due or occ != sent.get("occupancy")):
            sink.emit(occ)
            sent["occupancy"] = occ

    @staticmethod
    def _locker_events(sink: Sink, locker: str, before: LockerData, after: LockerData) -> None:
        """Door and checkout/return events for changes seen live (never for the first state)."""
        if before.door_open != after.door_open:
            kind: Literal["door_opened", "door_closed"] = (
                "door_opened" if after.door_open else "door_closed"
            )
            sink.emit(EventData(type=kind, locker=locker))
        old = {s.slot: s.present for s in before.slots}
        for slot in after.slots:
            was = old.get(slot.slot)
            if was is True and not slot.present:
                sink.emit(EventData(type="checkout", locker=locker, slot=slot.slot))
            elif was is False and slot.present:
                sink.emit(EventData(type="return", locker=locker, slot=slot.slot))
