"""``/metrics`` and ``/healthz`` on the alert service's metrics port.

The contract and the server are the central side's (``gateway.central.health``): a process
that is up is not a process that works. Each loop (MQTT, evaluation, Alertmanager delivery)
says what it does and by when it will have done it; ``/healthz`` answers from that in a
thread of its own, so it also sees an event loop that is blocked. 200 while every loop makes
progress or waits legitimately (the broker or Alertmanager away and being retried: the body
says so), 503 when a loop is dead, stuck past its deadline, or refused by the broker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from gateway.central.health import FATAL, LoopHealth, health_body, serve

__all__ = ["FATAL", "LoopHealth", "LoopStatus", "blocked", "health_body", "serve"]


@dataclass
class LoopStatus:
    """What one loop says about itself; written from the event loop, read by ``/healthz``."""

    name: str
    state: str = "starting"
    detail: str = ""
    #: monotonic time by which the loop will have moved on; None: no bound (it waits for
    #: something outside, e.g. the broker)
    deadline: float | None = None
    dead: bool = False
    #: not ok, but waiting for a person rather than stuck (credentials refused)
    refused: bool = False

    def set(self, state: str, detail: str = "", within: float | None = None) -> None:
        self.state, self.detail, self.refused = state, detail, False
        self.deadline = None if within is None else time.monotonic() + within

    def health(self, grace_s: float) -> LoopHealth:
        if self.dead:
            return LoopHealth(self.name, ok=False, state="dead", detail=self.detail)
        if self.deadline is not None and time.monotonic() > self.deadline + grace_s:
            late = time.monotonic() - self.deadline
            detail = f"{self.state} for {late:.0f} s past its deadline: {self.detail}"
            return LoopHealth(self.name, ok=False, state="stuck", detail=detail)
        return LoopHealth(self.name, ok=not self.refused, state=self.state, detail=self.detail)


def blocked(beat: float, grace_s: float) -> LoopHealth | None:
    """The event loop itself: its heartbeat task last ran at ``beat`` (monotonic)."""
    age = time.monotonic() - beat
    if age > grace_s:
        detail = f"the event loop has not run for {age:.0f} s (a handler that does not return?)"
        return LoopHealth("event_loop", ok=False, state="stuck", detail=detail)
    return None
