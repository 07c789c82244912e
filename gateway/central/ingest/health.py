"""``/metrics`` and ``/healthz`` on the ingest's metrics port.

A process that is up is not a process that works: the ingest's two loops (paho's network
thread and the writer thread) can end or hang while the process lives on. ``/healthz`` answers
from what each loop last said about itself, so a probe (compose, a load balancer, an operator
with curl) sees a dead or stuck loop as 503, and a loop that legitimately waits (no messages,
the broker or InfluxDB away and being retried) as 200 with the reason in the body.
"""

from __future__ import annotations

import time

from gateway.central.health import FATAL, LoopHealth, health_body, serve

__all__ = ["FATAL", "LoopHealth", "health_body", "mqtt_health", "serve", "writer_health"]


def mqtt_health(
    *,
    dead: bool,
    callback_since: float | None,
    refused: str,
    connected: bool,
    last_message: float,
    grace_s: float,
) -> LoopHealth:
    """paho's network thread: alive, not hanging in our callback, and let in by the broker.
    A broker out of reach is waiting (paho reconnects); refused credentials need a person."""
    now = time.monotonic()
    if dead:
        return LoopHealth("mqtt", ok=False, state="dead", detail="paho's network thread ended")
    if callback_since is not None and now - callback_since > grace_s:
        detail = f"one message in handling for {now - callback_since:.0f} s"
        return LoopHealth("mqtt", ok=False, state="stuck", detail=detail)
    if refused:
        return LoopHealth("mqtt", ok=False, state="refused", detail=f"broker refused: {refused}")
    if not connected:
        return LoopHealth("mqtt", ok=True, state="reconnecting", detail="broker not reached")
    detail = f"last message {now - last_message:.0f} s ago" if last_message else "no messages yet"
    return LoopHealth("mqtt", ok=True, state="connected", detail=detail)


def writer_health(
    *, dead: bool, state: str, detail: str, deadline: float | None, grace_s: float
) -> LoopHealth:
    """The writer thread: alive and within the deadline it set itself for what it does
    (waiting for messages, one HTTP attempt, a backoff while InfluxDB is away)."""
    if dead:
        return LoopHealth("writer", ok=False, state="dead", detail="the writer thread ended")
    if deadline is not None and time.monotonic() > deadline + grace_s:
        return LoopHealth("writer", ok=False, state="stuck", detail=f"{state}: {detail}")
    return LoopHealth("writer", ok=True, state=state, detail=detail)
