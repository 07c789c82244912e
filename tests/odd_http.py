"""An HTTP peer on 127.0.0.1 that answers as broken or misconfigured servers do.

Each request is read whole and answered by the current ``mode``: bytes from ``answers``
(something that is not HTTP, a 500 cut short, ...), ``silent`` (takes the request, never
answers), ``drip`` (a status line, then a header that never ends), or, for any other mode, by
the subclass (``pass`` hands it to the real server behind, so a test can end an outage by
switching the mode and see what was held arrive).
"""

from __future__ import annotations

import socketserver
import threading
import urllib.error
import urllib.request
from types import TracebackType
from typing import ClassVar, Self

#: What every odd peer can send, byte for byte.
COMMON_ANSWERS = {
    # something that is not HTTP at all (an SSH server on the configured port)
    "garbage": b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
    # a 500 whose body ends long before its Content-Length (a proxy or server dying)
    "truncated500": (
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
        b'Content-Length: 200\r\nConnection: close\r\n\r\n{"error":"time'
    ),
}


class OddServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    #: mode -> the bytes sent back
    answers: ClassVar[dict[str, bytes]] = COMMON_ANSWERS

    def __init__(self, upstream: str | None, mode: str = "pass", port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), OddHandler)
        self.upstream = upstream
        self.mode = mode
        self.requests = 0
        self.closing = threading.Event()
        self._seen = threading.Condition()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def count(self) -> None:
        with self._seen:
            self.requests += 1
            self._seen.notify_all()

    def wait_requests(self, n: int, timeout: float) -> None:
        with self._seen:
            if not self._seen.wait_for(lambda: self.requests >= n, timeout):
                raise AssertionError(f"{self.requests} requests after {timeout} s, wanted {n}")

    def __enter__(self) -> Self:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self,
        typ: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.closing.set()
        self.shutdown()
        self.server_close()

    def other(self, handler: OddHandler, path: str, headers: dict[str, str], body: bytes) -> None:
        """Any other mode: the real server behind answers (``pass``)."""
        handler.forward(path, headers, body)

    def forward_headers(self, headers: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in headers.items() if k in ("content-encoding", "content-type")}


class OddHandler(socketserver.StreamRequestHandler):
    server: OddServer

    def handle(self) -> None:
        request_line = self.rfile.readline().decode()
        if not request_line:
            return
        headers: dict[str, str] = {}
        while (line := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = self.rfile.read(int(headers.get("content-length", "0")))
        self.server.count()
        mode = self.server.mode
        if mode in self.server.answers:
            self.wfile.write(self.server.answers[mode])
        elif mode == "silent":  # takes the request, never answers: the client's timeout
            self.server.closing.wait()
        elif mode == "drip":  # a status line, then a header that never ends
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Drip: ")
            while not self.server.closing.wait(0.3):
                self.wfile.write(b"x")
                self.wfile.flush()
        else:
            self.server.other(self, request_line.split()[1], headers, body)

    def answer(self, status: int, body: bytes) -> None:
        self.wfile.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )

    def forward(self, path: str, headers: dict[str, str], body: bytes) -> None:
        assert self.server.upstream, "pass needs a real server behind"
        req = urllib.request.Request(  # noqa: S310 - loopback
            self.server.upstream + path,
            data=body,
            method="POST",
            headers=self.server.forward_headers(headers),
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
                self.answer(resp.status, resp.read())
        except urllib.error.HTTPError as exc:
            self.answer(exc.code, exc.read())
