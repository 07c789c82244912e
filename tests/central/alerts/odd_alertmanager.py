"""An "Alertmanager" on 127.0.0.1 that answers as broken or misconfigured peers do.

Each request is read whole and answered by the current ``mode``; ``pass`` hands it to a real
Alertmanager, so a test can end an outage by switching the mode and see what was held arrive.
"""

from __future__ import annotations

import socketserver
import threading
import urllib.error
import urllib.request
from types import TracebackType

#: Byte for byte what each peer sends back.
ANSWERS = {
    # something that is not HTTP at all (an SSH server on the configured port)
    "garbage": b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
    # a 500 whose body ends long before its Content-Length (a proxy or server dying)
    "truncated500": (
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
        b'Content-Length: 200\r\nConnection: close\r\n\r\n{"error":"time'
    ),
    # a proxy in front of an Alertmanager that is restarting
    "503": (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 19\r\nConnection: close\r\n"
        b"\r\nno healthy upstream"
    ),
}


class OddAlertmanager(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream: str, mode: str = "pass", port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
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

    def __enter__(self) -> OddAlertmanager:
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


class _Handler(socketserver.StreamRequestHandler):
    server: OddAlertmanager

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
        if mode in ANSWERS:
            self.wfile.write(ANSWERS[mode])
        elif mode == "silent":  # takes the request, never answers: the client's timeout
            self.server.closing.wait()
        elif mode == "drip":  # a status line, then a header that never ends
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Drip: ")
            while not self.server.closing.wait(0.3):
                self.wfile.write(b"x")
                self.wfile.flush()
        else:
            self._forward(request_line.split()[1], body)

    def _forward(self, path: str, body: bytes) -> None:
        req = urllib.request.Request(  # noqa: S310 - loopback
            self.server.upstream + path,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
                status, answer = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, answer = exc.code, exc.read()
        self.wfile.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(answer)}\r\nConnection: close\r\n\r\n".encode()
            + answer
        )
