"""An "InfluxDB" on 127.0.0.1 that answers as broken or misconfigured peers do.

Each request is read whole and answered by the current ``mode``; ``pass`` hands it to a real
InfluxDB, so a test can end an outage by switching the mode and see what was held land.
"""

from __future__ import annotations

import json
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
    # Go's net/http (InfluxDB) on a TLS port, spoken to in plain HTTP
    "https": (b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"),
}
#: 400s with a JSON error, as InfluxDB 1.x words them.
ERRORS = {
    "series": "partial write: max-series-per-database limit exceeded: (1000) dropped=1",
    # a peer that refuses every line alike: no line can be shown bad on its own
    "refuse_all": "unable to parse 'x': invalid field format",
}


class OddInflux(socketserver.ThreadingTCPServer):
    daemon_threads = True

    def __init__(self, upstream: str | None = None, mode: str = "pass") -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
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

    def __enter__(self) -> OddInflux:
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
    server: OddInflux

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
        elif mode in ERRORS:
            self._answer(400, json.dumps({"error": ERRORS[mode]}).encode())
        elif mode == "drip":  # a status line, then a header that never ends
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Drip: ")
            while not self.server.closing.wait(0.3):
                self.wfile.write(b"x")
                self.wfile.flush()
        else:
            self._forward(request_line.split()[1], headers, body)

    def _answer(self, status: int, body: bytes) -> None:
        self.wfile.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )

    def _forward(self, path: str, headers: dict[str, str], body: bytes) -> None:
        assert self.server.upstream, "pass needs a real InfluxDB behind"
        keep = {k: v for k, v in headers.items() if k in ("content-encoding", "content-type")}
        req = urllib.request.Request(  # noqa: S310 - loopback
            self.server.upstream + path, data=body, method="POST", headers=keep
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
                self._answer(resp.status, resp.read())
        except urllib.error.HTTPError as exc:
            self._answer(exc.code, exc.read())
