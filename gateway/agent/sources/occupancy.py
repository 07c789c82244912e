"""Occupancy: presence (PIR), people counted at the door (two beams), free seats.

Counts only, never identities. The logic is kept apart from gpiozero (``PresenceHold``,
``DoorCounter``) so it can be property-tested; ``OccupancySource`` only wires pins to it.

Presence means: a PIR saw motion, or the door count is above zero, or a seat is taken.
A room turns free only after ``hold_time_s`` without presence (people reading sit still
longer than a PIR's own hold), and occupied at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal
from zoneinfo import ZoneInfo

from gateway.agent.config import OccupancySection
from gateway.agent.sources.base import Sink
from gateway.clock import Clock
from gateway.models import EventData, OccupancyData

_LOGGER = logging.getLogger(__name__)

Beam = Literal["outer", "inner"]


class PresenceHold:
    """Occupied at once on presence; free only ``hold_s`` after the last presence."""

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self.occupied = False
        self._last_presence: float | None = None

    def update(self, present: bool, now: float) -> bool:
        if present:
            self.occupied = True
            self._last_presence = now
        elif (
            self.occupied
            and self._last_presence is not None
            and now - self._last_presence >= self.hold_s
        ):
            self.occupied = False
        return self.occupied

    def seconds_to_free(self, now: float) -> float | None:
        """When the room would turn free if nothing happens; None when already free."""
        if not self.occupied or self._last_presence is None:
            return None
        return max(0.0, self._last_presence + self.hold_s - now)


class DoorCounter:
    """People in the room from two break-beams across the door.

    A crossing is the time from the first beam blocked until both are clear again. It counts
    "in" when the corridor-side beam was blocked first *and* the room-side beam cleared last
    (and "out" the other way round), so someone who steps into the door and back out counts
    nothing. A crossing longer than ``window_s`` counts nothing either. Never below zero.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.count = 0
        self.ins = 0
        self.outs = 0
        self._blocked: set[Beam] = set()
        self._first: Beam | None = None
        self._start = 0.0

    def beam(self, which: Beam, blocked: bool, now: float) -> int:
        """Feed one beam edge; return the change of the count (-1, 0, +1)."""
        if blocked:
            if not self._blocked:
                self._first, self._start = which, now
            self._blocked.add(which)
            return 0
        self._blocked.discard(which)
        if self._blocked or self._first is None:
            return 0
        first, self._first = self._first, None
        if now - self._start > self.window_s or which == first:
            return 0  # too slow, or went back the way it came
        if first == "outer":
            self.count += 1
            self.ins += 1
            return 1
        if self.count > 0:
            self.count -= 1
            self.outs += 1
            return -1
        self.outs += 1
        return 0  # someone left whom we never saw come in: stay at zero

    def reset(self) -> None:
        self.count = 0


@dataclass
class _Edge:
    what: str  # "motion", "beam", "seat"
    which: Any = None
    active: bool = False


def _motion(pir: Any) -> bool:  # noqa: ANN401 - gpiozero is untyped
    """``pir.motion_detected``, read safely: gpiozero's queue thread appends to the deque that
    ``value`` averages, and a read that meets an append raises "deque mutated during
    iteration" (seen in a soak). The next read a moment later is consistent."""
    for _ in range(4):
        try:
            return bool(pir.motion_detected)
        except RuntimeError:
            time.sleep(0.001)
    return bool(pir.motion_detected)


class OccupancySource:
    name = "occupancy"

    def __init__(
        self,
        config: OccupancySection,
        capacity: int,
        interval_s: float,
        clock: Clock,
        pin_factory: Any,  # noqa: ANN401 - a gpiozero pin Factory
        tz: ZoneInfo,
    ) -> None:
        self.config = config
        self.capacity = capacity
        self.interval_s = interval_s
        self.clock = clock
        self.pin_factory = pin_factory
        self.tz = tz
        self.hold = PresenceHold(config.hold_time_s)
        has_beams = config.beam_outer_pin is not None
        self.counter = DoorCounter(config.beam_window_s) if has_beams else None
        self._devices: list[Any] = []
        self._queue: asyncio.Queue[_Edge] = asyncio.Queue()
        self._last_reset: date | None = None
        #: set once the pins are open (a simulation drives them only after that)
        self.opened = asyncio.Event()
        #: the debounce: at most one change report per this many clock seconds
        self.min_gap_s = 0.5

    def _open(self, loop: asyncio.AbstractEventLoop) -> tuple[list[Any], list[Any]]:
        from gpiozero import DigitalInputDevice, MotionSensor  # noqa: PLC0415

        f, cfg = self.pin_factory, self.config

        def hand(edge: _Edge) -> Any:  # noqa: ANN401
            # gpiozero calls back on its own threads: only hand the edge to the loop
            return lambda: loop.call_soon_threadsafe(self._queue.put_nowait, edge)

        pirs = []
        for pin in cfg.pir_pins:
            # PIR modules debounce and hold by themselves: no smoothing queue needed
            pir = MotionSensor(pin, queue_len=1, sample_rate=10, pin_factory=f)
            pir.when_motion = hand(_Edge("motion", active=True))
            pir.when_no_motion = hand(_Edge("motion", active=False))
            pirs.append(pir)
        if self.counter is not None:
            beams = (("outer", cfg.beam_outer_pin), ("inner", cfg.beam_inner_pin))
            for which, beam_pin in beams:
                # IR receivers pull low while the beam is broken: active = blocked
                beam = DigitalInputDevice(beam_pin, pull_up=True, pin_factory=f)
                beam.when_activated = hand(_Edge("beam", which, True))
                beam.when_deactivated = hand(_Edge("beam", which, False))
                self._devices.append(beam)
        seats = []
        for pin in cfg.seat_pins:
            seat = DigitalInputDevice(pin, pull_up=not cfg.seat_active_high, pin_factory=f)
            seat.when_activated = hand(_Edge("seat", active=True))
            seat.when_deactivated = hand(_Edge("seat", active=False))
            seats.append(seat)
        self._devices += pirs + seats
        return pirs, seats

    def reading(self, pirs: list[Any], seats: list[Any], now: float) -> OccupancyData:
        taken = sum(1 for s in seats if s.is_active)
        people = self.counter.count if self.counter is not None else None
        present = any(_motion(p) for p in pirs) or bool(people) or taken > 0
        occupied = self.hold.update(present, now)
        return OccupancyData(
            people=people,
            occupied=occupied,
            seats_total=len(seats) if seats else None,
            seats_free=len(seats) - taken if seats else None,
            capacity=self.capacity,
        )

    def _maybe_reset(self, sink: Sink) -> bool:
        if self.counter is None or self.config.reset_hour is None:
            return False
        local = self.clock.now().astimezone(self.tz)
        if local.hour == self.config.reset_hour and self._last_reset != local.date():
            self._last_reset = local.date()
            if self.counter.count:
                _LOGGER.info("nightly reset: %d people counted still in", self.counter.count)
            self.counter.reset()
            sink.emit(EventData(type="people_reset", detail="nightly reset of the door count"))
            return True
        return False

    async def run(self, sink: Sink) -> None:
        pirs, seats = self._open(asyncio.get_running_loop())
        self.opened.set()
        try:
            await self._loop(sink, pirs, seats)
        finally:
            for device in self._devices:
                device.close()

    async def _loop(self, sink: Sink, pirs: list[Any], seats: list[Any]) -> None:
        last: OccupancyData | None = None
        last_sent = -1e18
        while True:
            now = self.clock.monotonic()
            changed = self._maybe_reset(sink)
            data = self.reading(pirs, seats, now)
            due = now - last_sent >= self.interval_s
            if ((data != last or changed) and now - last_sent >= self.min_gap_s) or due:
                sink.emit(data)
                last, last_sent = data, now
            wait = self.interval_s - (now - last_sent)
            to_free = self.hold.seconds_to_free(now)
            if to_free is not None:
                wait = min(wait, to_free + 0.01)
            if data != last:
                wait = min(wait, self.min_gap_s - (now - last_sent))
            edge = await self._next_edge(max(wait, 0.0))
            if edge is not None and edge.what == "beam" and self.counter is not None:
                self.counter.beam(edge.which, edge.active, self.clock.monotonic())
            while not self._queue.empty():  # take every edge that arrived meanwhile
                edge = self._queue.get_nowait()
                if edge.what == "beam" and self.counter is not None:
                    self.counter.beam(edge.which, edge.active, self.clock.monotonic())

    async def _next_edge(self, clock_seconds: float) -> _Edge | None:
        sleeper = asyncio.ensure_future(self.clock.sleep(clock_seconds))
        getter = asyncio.ensure_future(self._queue.get())
        try:
            await asyncio.wait({sleeper, getter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        return None
