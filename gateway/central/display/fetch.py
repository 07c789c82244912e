"""One HTTP(S) GET with a deadline for the whole answer, not per socket read.

urllib's ``timeout`` bounds each connect and each ``recv``: a host that drips one byte every
2 s never trips a 10 s timeout and holds its worker for as long as it likes, so one slow
calendar could hold up the rooms behind it. Here a timer cuts every socket of the fetch (the
first and any redirect's) when the deadline passes; the blocked read returns at once and the
fetch fails with ``TimeoutError``. Redirects, proxies and TLS stay urllib's.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
import urllib.request
from typing import Any

__all__ = ["fetch"]


class _Cut:
    """The sockets of one fetch, shut down together when its deadline passes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.expired = False

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                self._shut(sock)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        # socket-level shutdown, also of an SSLSocket: the reading thread wakes with EOF
        with contextlib.suppress(OSError):  # closed by the reader already: nothing to cut
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _opener(cut: _Cut) -> urllib.request.OpenerDirector:
    """urllib's opener whose connections report their sockets to ``cut``."""

    class Http(http.client.HTTPConnection):
        def connect(self) -> None:
            super().connect()
            cut.watch(self.sock)

    class Https(http.client.HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            cut.watch(self.sock)

    context = ssl.create_default_context()

    class HttpHandler(urllib.request.HTTPHandler):
        def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(Http, req)

    class HttpsHandler(urllib.request.HTTPSHandler):
        def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            kwargs: dict[str, Any] = {"context": context}
            return self.do_open(Https, req, **kwargs)

    return urllib.request.build_opener(HttpHandler, HttpsHandler(context=context))


def fetch(request: urllib.request.Request, *, deadline_s: float, max_bytes: int) -> bytes:
    """The body of ``request``, or ``TimeoutError`` once ``deadline_s`` has passed from the
    start (connect, headers, body); at most ``max_bytes + 1`` bytes are read."""
    cut = _Cut()
    timer = threading.Timer(deadline_s, cut.expire)
    timer.daemon = True
    timer.start()
    end = time.monotonic() + deadline_s
    chunks: list[bytes] = []
    size = 0
    try:
        with _opener(cut).open(request, timeout=deadline_s) as response:
            while size <= max_bytes:
                chunk = response.read1(65536)
                if not chunk or cut.expired or time.monotonic() > end:
                    break
                chunks.append(chunk)
                size += len(chunk)
    except (OSError, http.client.HTTPException, ValueError):
        if cut.expired:
            raise TimeoutError(f"no whole answer within {deadline_s:g} s") from None
        raise
    finally:
        timer.cancel()
    if cut.expired or time.monotonic() > end:
        raise TimeoutError(f"no whole answer within {deadline_s:g} s")
    return b"".join(chunks)
