"""Loss and duplicate accounting per gateway from the envelope's ``seq`` (DESIGN.md "MQTT").

Order is not guaranteed: after an outage a gateway sends its present state first and then
the backlog, oldest first, and the broker redelivers what an ingest did not acknowledge. So
each gateway keeps the ``seq`` numbers it has seen as a few disjoint ranges: a number inside a
range is a duplicate; the holes between ranges are "missing" and close when a late copy
arrives; a hole that lies more than ``settle`` numbers below the highest seen counts as lost.
An in-order stream is one range, so memory stays tiny; at most ``max_ranges`` ranges are kept
(the oldest holes are settled as lost first). Numbers below the first one seen are no loss:
the ingest cannot know where a gateway was when the ingest started.

The state is bounded, because the names and numbers come from senders: a gateway not heard
from for ``idle_s`` is forgotten (it starts afresh when it returns); at most ``max_gateways``
are tracked and the messages of any beyond are counted in ``untracked``; a number more than
``max_jump`` away from everything seen (a corrupted counter, or ``seq = 2**62``) restarts
the gateway's ranges there and is counted in ``jumps`` instead of leaving ``missing`` at
quintillions until the gateway catches up.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final


@dataclass
class GatewaySeqs:
    #: sorted, disjoint, non-adjacent [lo, hi] ranges of seen numbers
    ranges: list[list[int]] = field(default_factory=list)
    missing: int = 0
    duplicates: int = 0
    lost: int = 0
    resets: int = 0
    jumps: int = 0
    #: the tracker's clock when this gateway was last seen
    seen: float = 0.0

    @property
    def highest(self) -> int:
        return self.ranges[-1][1]


@dataclass(frozen=True)
class Observation:
    duplicate: bool = False
    newly_lost: int = 0
    reset: bool = False
    jump: bool = False
    #: over ``max_gateways``: not accounted
    untracked: bool = False


_NOTHING: Final = Observation()


class SeqTracker:
    def __init__(
        self,
        *,
        settle: int = 10_000,
        max_ranges: int = 1000,
        max_gateways: int = 20_000,
        idle_s: float = 7 * 86_400.0,
        max_jump: int = 1_000_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``max_jump``: five times what an outbox holds by default (200 000 messages), so a
        real outage's hole is always counted; ``idle_s``: a week, longer than a holiday."""
        self.settle = settle
        self.max_ranges = max_ranges
        self.max_gateways = max_gateways
        self.idle_s = idle_s
        self.max_jump = max_jump
        self.clock = clock
        #: in order of last sighting, oldest first, so idle ones are found at the front
        self.gateways: dict[tuple[str, str], GatewaySeqs] = {}
        self.untracked = 0
        self.expired = 0
        self.jumps = 0

    def observe(self, site: str, room: str, seq: int, *, replay: bool = False) -> Observation:
        """``replay``: the broker's stored (retained) copy handed out on subscribe; seeing it
        again is not the gateway sending twice."""
        now = self.clock()
        key = (site, room)
        gw = self.gateways.pop(key, None)
        self._expire(now)
        if gw is None:
            if len(self.gateways) >= self.max_gateways:
                self.untracked += 1
                return Observation(untracked=True)
            self.gateways[key] = GatewaySeqs(ranges=[[seq, seq]], seen=now)
            return Observation()
        self.gateways[key] = gw  # to the end: the most recently seen
        gw.seen = now
        ranges = gw.ranges
        if len(ranges) == 1 and ranges[0][1] == seq - 1:
            ranges[0][1] = seq  # the common case, next in order: nothing missing, nothing lost
            return _NOTHING
        if seq > gw.highest + self.max_jump or seq < ranges[0][0] - self.max_jump:
            self.gateways[key] = GatewaySeqs(
                ranges=[[seq, seq]],
                seen=now,
                duplicates=gw.duplicates,
                lost=gw.lost,
                resets=gw.resets,
                jumps=gw.jumps + 1,
            )
            self.jumps += 1
            return Observation(jump=True)
        i = bisect_right(ranges, [seq, float("inf")]) - 1  # last range starting at or below
        if i >= 0 and seq <= ranges[i][1]:
            if seq <= 1 < gw.highest - self.settle and not replay:
                # 0 again, long after: the gateway lost its outbox (a new SD card)
                self.gateways[key] = GatewaySeqs(
                    ranges=[[seq, seq]],
                    seen=now,
                    duplicates=gw.duplicates,
                    lost=gw.lost,
                    resets=gw.resets + 1,
                    jumps=gw.jumps,
                )
                return Observation(reset=True)
            if not replay:
                gw.duplicates += 1
            return Observation(duplicate=not replay)
        self._insert(gw, i, seq)
        return Observation(newly_lost=self._settle(gw))

    def _expire(self, now: float) -> None:
        """Forget gateways idle for ``idle_s``; the front of the dict is the oldest sighting."""
        horizon = now - self.idle_s
        while self.gateways:
            key, gw = next(iter(self.gateways.items()))
            if gw.seen > horizon:
                return
            del self.gateways[key]
            self.expired += 1

    @staticmethod
    def _insert(gw: GatewaySeqs, i: int, seq: int) -> None:
        ranges = gw.ranges
        below = ranges[i] if i >= 0 else None
        above = ranges[i + 1] if i + 1 < len(ranges) else None
        if below is not None and above is not None:
            gw.missing -= 1  # a late copy fills one number of a hole
        elif above is None and below is not None:
            gw.missing += seq - below[1] - 1  # ahead of everything: a new hole (maybe empty)
        elif above is not None:
            gw.missing += above[0] - seq - 1  # below the lowest seen: a hole above it
        if below is not None and below[1] == seq - 1:
            below[1] = seq
            if above is not None and above[0] == seq + 1:
                below[1] = above[1]
                del ranges[i + 1]
        elif above is not None and above[0] == seq + 1:
            above[0] = seq
        else:
            ranges.insert(i + 1, [seq, seq])

    def _settle(self, gw: GatewaySeqs) -> int:
        ranges = gw.ranges
        lost = 0
        while len(ranges) > 1 and (
            ranges[1][0] - 1 < gw.highest - self.settle or len(ranges) > self.max_ranges
        ):
            hole = ranges[1][0] - ranges[0][1] - 1
            lost += hole
            ranges[0][1] = ranges[1][1]
            del ranges[1]
        gw.missing -= lost
        gw.lost += lost
        return lost

    def missing(self, site: str, room: str) -> int:
        gw = self.gateways.get((site, room))
        return gw.missing if gw else 0
