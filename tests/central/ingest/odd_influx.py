"""An "InfluxDB" on 127.0.0.1 that answers as broken or misconfigured peers do (see
``tests.odd_http``); ``pass`` hands each request to a real InfluxDB, so a test can end an
outage by switching the mode and see what was held land."""

from __future__ import annotations

import json
from typing import ClassVar

from tests.odd_http import COMMON_ANSWERS, OddHandler, OddServer

#: 400s with a JSON error, as InfluxDB 1.x words them.
ERRORS = {
    "series": "partial write: max-series-per-database limit exceeded: (1000) dropped=1",
    # a peer that refuses every line alike: no line can be shown bad on its own
    "refuse_all": "unable to parse 'x': invalid field format",
}


class OddInflux(OddServer):
    answers: ClassVar[dict[str, bytes]] = COMMON_ANSWERS | {
        # Go's net/http (InfluxDB) on a TLS port, spoken to in plain HTTP
        "https": (
            b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
        ),
    }

    def __init__(self, upstream: str | None = None, mode: str = "pass") -> None:
        super().__init__(upstream, mode)

    def other(self, handler: OddHandler, path: str, headers: dict[str, str], body: bytes) -> None:
        if self.mode in ERRORS:
            handler.answer(400, json.dumps({"error": ERRORS[self.mode]}).encode())
        else:
            handler.forward(path, headers, body)
