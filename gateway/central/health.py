"""``/healthz`` beside ``/metrics`` on a central service's metrics port, shared by all three.

A process that is up is not a process that works: a loop (MQTT, a writer, an evaluation, a
calendar fetch) can end or hang while the process lives on. Each service says per loop what it
does (``LoopHealth``); ``/healthz`` answers from that in a thread of its own, so it also sees an
event loop that hangs: 200 while every loop makes progress or legitimately waits (the body says
why), 503 when one is dead, stuck, or refused by the broker. What makes a loop healthy is each
service's own business (its ``health`` module); the answer and the server are the same.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

__all__ = ["FATAL", "LoopHealth", "health_body", "serve"]

#: States from which a loop does not recover by itself: the service exits non-zero so that
#: systemd or compose start it again.
FATAL = frozenset({"dead", "stuck"})


@dataclass(frozen=True)
class LoopHealth:
    """What one loop is doing; ``ok`` is False when it does not make progress."""

    loop: str
    ok: bool
    state: str
    detail: str = ""

    @property
    def fatal(self) -> bool:
        return self.state in FATAL


def health_body(
    loops: Iterable[LoopHealth], extra: dict[str, Any] | None = None
) -> tuple[bool, bytes]:
    """The ``/healthz`` verdict and its JSON body: every loop's state and why."""
    items = list(loops)
    ok = all(h.ok for h in items)
    body: dict[str, Any] = {"status": "ok" if ok else "failing"}
    body["loops"] = {h.loop: {"ok": h.ok, "state": h.state, "detail": h.detail} for h in items}
    return ok, json.dumps(body | (extra or {})).encode()


def serve(
    host: str,
    port: int,
    registry: CollectorRegistry,
    health: Callable[[], Iterable[LoopHealth]],
    *,
    name: str,
) -> WSGIServer:
    """``/healthz`` from ``health`` and everything else as Prometheus metrics, in a daemon
    thread named ``name`` (it answers while the event loop hangs); ``shutdown()`` and
    ``server_close()`` end it."""
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
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    return server
