"""Loss and duplicate accounting per gateway from the envelope's ``seq`` (DESIGN.md "MQTT").

Order is not guaranteed: after an outage a gateway sends its present state first, then the
backlog oldest first. So a ``seq`` above the highest seen opens a gap of "missing" numbers,
and a late arrival inside the gap closes it again; only a number seen before is a duplicate.
A gap still open after ``settle`` further messages of that gateway counts as lost. Each
gateway keeps at most ``max_missing`` open numbers, so memory stays bounded whatever arrives.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class GatewaySeqs:
    highest: int
    missing: set[int] = field(default_factory=set)
    #: (seq, messages seen when it went missing): oldest first, to settle as lost
    opened: deque[tuple[int, int]] = field(default_factory=deque)
    seen: int = 0
    duplicates: int = 0
    lost: int = 0
    resets: int = 0


@dataclass(frozen=True)
class Observation:
    duplicate: bool = False
    new_missing: int = 0
    filled: bool = False
    newly_lost: int = 0
    reset: bool = False


class SeqTracker:
    def __init__(self, *, settle: int = 10_000, max_missing: int = 100_000) -> None:
        self.settle = settle
        self.max_missing = max_missing
        self.gateways: dict[tuple[str, str], GatewaySeqs] = {}

    def observe(self, site: str, room: str, seq: int) -> Observation:
        gw = self.gateways.get((site, room))
        if gw is None:
            self.gateways[(site, room)] = GatewaySeqs(highest=seq, seen=1)
            return Observation()
        gw.seen += 1
        if seq > gw.highest:
            gap = seq - gw.highest - 1
            for opened, missing in enumerate(range(gw.highest + 1, seq)):
                if len(gw.opened) >= self.max_missing:
                    gw.lost += gap - opened  # beyond the bound: counted lost at once
                    break
                gw.missing.add(missing)
                gw.opened.append((missing, gw.seen))
            gw.highest = seq
            return Observation(new_missing=gap, newly_lost=self._settle(gw))
        if seq in gw.missing:
            gw.missing.discard(seq)
            return Observation(filled=True, newly_lost=self._settle(gw))
        if seq <= 1 < gw.highest - self.settle:
            # the gateway lost its outbox (new SD card): start over, nothing was lost
            self.gateways[(site, room)] = GatewaySeqs(
                highest=seq, seen=1, resets=gw.resets + 1, lost=gw.lost
            )
            return Observation(reset=True)
        gw.duplicates += 1
        return Observation(duplicate=True, newly_lost=self._settle(gw))

    def _settle(self, gw: GatewaySeqs) -> int:
        lost = 0
        while gw.opened and gw.seen - gw.opened[0][1] >= self.settle:
            seq, _ = gw.opened.popleft()
            if seq in gw.missing:
                gw.missing.discard(seq)
                gw.lost += 1
                lost += 1
        return lost

    def missing(self, site: str, room: str) -> int:
        gw = self.gateways.get((site, room))
        return len(gw.missing) if gw else 0
