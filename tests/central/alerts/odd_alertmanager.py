"""An "Alertmanager" on 127.0.0.1 that answers as broken or misconfigured peers do (see
``tests.odd_http``); ``pass`` hands each request to a real Alertmanager, so a test can end an
outage by switching the mode and see what was held arrive."""

from __future__ import annotations

from typing import ClassVar

from tests.odd_http import COMMON_ANSWERS, OddServer


class OddAlertmanager(OddServer):
    answers: ClassVar[dict[str, bytes]] = COMMON_ANSWERS | {
        # a proxy in front of an Alertmanager that is restarting
        "503": (
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 19\r\nConnection: close\r\n"
            b"\r\nno healthy upstream"
        ),
    }

    def __init__(self, upstream: str, mode: str = "pass", port: int = 0) -> None:
        super().__init__(upstream, mode, port)

    def forward_headers(self, headers: dict[str, str]) -> dict[str, str]:
        return {"Content-Type": "application/json"}
