"""``/metrics`` and ``/healthz`` on the alert service's metrics port.

The same contract as the ingest's (``gateway.central.ingest.health``; the layers keep the two
services apart, so the few lines are repeated here): a process that is up is not a process
that works. Each loop (MQTT, evaluation, Alertmanager delivery) says what it does and by when
it will have done it; ``/healthz`` answers from that in a thread of its own, so it also sees an
event loop that is blocked. 200 while every loop makes progress or waits legitimately (the
broker or Alertmanager away and being retried: the body says so), 503 when a loop is dead,
stuck past its deadline, or refused by the broker.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

#: States from which a loop does not recover by itself: the service exits non-zero.
FATAL = frozenset({"dead", "stuck"})


@dataclass(frozen=True)
class LoopHealth:
    loop: str
    ok: bool
    state: str
    detail: str = ""

    @property
    def fatal(self) -> bool:
        return self.state in FATAL


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


def health_body(loops: Iterable[LoopHealth]) -> tuple[bool, bytes]:
    """The verdict and its JSON body: ``{"status": "ok"|"failing", "loops": {...}}``."""
    items = list(loops)
    ok = all(h.ok for h in items)
    loops_out = {h.loop: {"ok": h.ok, "state": h.state, "detail": h.detail} for h in items}
    return ok, json.dumps({"status": "ok" if ok else "failing", "loops": loops_out}).encode()


def serve(
    host: str,
    port: int,
    registry: CollectorRegistry,
    health: Callable[[], Iterable[LoopHealth]],
) -> WSGIServer:
    """``/healthz`` from ``health``, everything else Prometheus metrics, in a daemon thread."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            ok, body = health_body(health())
            start_response(
                "200 OK" if ok else "503 Service Unavailable",
                [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
            )
            return [body]
        return metrics(environ, start_response)  # type: ignore[no-any-return]

    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_SilentHandler)
    threading.Thread(target=server.serve_forever, name="alerts-metrics", daemon=True).start()
    return server
