"""Loss and duplicate accounting per gateway from the envelope's ``seq`` (DESIGN.md "MQTT").

Order is not guaranteed: after an outage a gateway sends its present state first and then
the backlog, oldest first, and the broker redelivers what an ingest did not acknowledge. So
each gateway keeps the ``seq`` numbers it has seen as a few disjoint ranges: a number inside a
range is a duplicate; the holes between ranges are "missing" and close when a late copy
arrives; a hole that lies more than ``settle`` numbers below the highest seen counts as lost.
An in-order stream is one range, so memory stays tiny; at most ``max_ranges`` ranges are kept
(the oldest holes are settled as lost first). Numbers below the first one seen are no loss:
the ingest cannot know where a gateway was when the ingest started.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field


@dataclass
class GatewaySeqs:
    #: sorted, disjoint, non-adjacent [lo, hi] ranges of seen numbers
    ranges: list[list[int]] = field(default_factory=list)
    missing: int = 0
    duplicates: int = 0
    lost: int = 0
    resets: int = 0

    @property
    def highest(self) -> int:
        return self.ranges[-1][1]


@dataclass(frozen=True)
class Observation:
    duplicate: bool = False
    newly_lost: int = 0
    reset: bool = False


class SeqTracker:
    def __init__(self, *, settle: int = 10_000, max_ranges: int = 1000) -> None:
        self.settle = settle
        self.max_ranges = max_ranges
        self.gateways: dict[tuple[str, str], GatewaySeqs] = {}

    def observe(self, site: str, room: str, seq: int, *, replay: bool = False) -> Observation:
        """``replay``: the broker's stored (retained) copy handed out on subscribe; seeing it
        again is not the gateway sending twice."""
        gw = self.gateways.get((site, room))
        if gw is None:
            self.gateways[(site, room)] = GatewaySeqs(ranges=[[seq, seq]])
            return Observation()
        ranges = gw.ranges
        i = bisect_right(ranges, [seq, float("inf")]) - 1  # last range starting at or below
        if i >= 0 and seq <= ranges[i][1]:
            if seq <= 1 < gw.highest - self.settle and not replay:
                # 0 again, long after: the gateway lost its outbox (a new SD card)
                self.gateways[(site, room)] = GatewaySeqs(
                    ranges=[[seq, seq]], resets=gw.resets + 1, lost=gw.lost
                )
                return Observation(reset=True)
            if not replay:
                gw.duplicates += 1
            return Observation(duplicate=not replay)
        self._insert(gw, i, seq)
        return Observation(newly_lost=self._settle(gw))

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
