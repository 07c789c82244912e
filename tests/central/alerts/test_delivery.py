"""What the delivery to Alertmanager keeps and gives up: the outbox's bound, and the 4xx
that condemns one alert only when others of its batch were taken."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from gateway.central.alerts.delivery import AlertmanagerError, Outbox, post_bisect


def alert(room: str, bad: bool = False) -> dict[str, Any]:
    return {"labels": {"alertname": "x", "room": room} | ({"bad": "1"} if bad else {})}


class Picky:
    """An Alertmanager that refuses (400) every batch holding an alert labelled ``bad``, or
    every batch at all with ``status``; ``taken`` is every alert it accepted."""

    def __init__(self, status: int | None = None) -> None:
        self.taken: list[dict[str, Any]] = []
        picky = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                alerts = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if status is not None or any("bad" in a["labels"] for a in alerts):
                    self.send_response(status or 400)
                    self.end_headers()
                    self.wfile.write(b'{"error": "refused"}')
                    return
                picky.taken += alerts
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture
def picky() -> Iterator[Picky]:
    server = Picky()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_a_refused_batch_is_split_until_the_alert_refused_alone_is_found(picky: Picky):
    batch = [alert(f"r{i}", bad=i == 5) for i in range(8)]
    refused = post_bisect(picky.url, batch, 5.0)
    assert refused == [batch[5]]
    assert sorted(a["labels"]["room"] for a in picky.taken) == sorted(
        f"r{i}" for i in range(8) if i != 5
    )


def test_nothing_is_given_up_when_nothing_can_be_shown_to_pass(picky: Picky):
    with pytest.raises(AlertmanagerError):
        post_bisect(picky.url, [alert("a", bad=True), alert("b", bad=True)], 5.0)


@pytest.mark.parametrize("status", [401, 403, 404, 429])
def test_a_4xx_that_is_not_about_the_alerts_is_unavailability(status: int):
    server = Picky(status)
    try:
        with pytest.raises(AlertmanagerError) as caught:
            post_bisect(server.url, [alert("a"), alert("b")], 5.0)
        assert caught.value.status == status and not caught.value.refused
    finally:
        server.server.shutdown()
        server.server.server_close()


def test_the_outbox_keeps_the_newest_resolutions_up_to_its_bound():
    box = Outbox(limit=3)
    for i in range(5):
        box.add_resolved(("s", f"r{i}", "co2"), alert(f"r{i}"))
    assert [k[1] for k in box.resolved] == ["r2", "r3", "r4"]
    assert box.dropped == 2
    box.add_fired(("s", "r3", "co2"), alert("r3-again"))
    assert ("s", "r3", "co2") not in box.resolved, "firing again supersedes the resolution"
    sent = box.take()
    box.add_resolved(("s", "r4", "co2"), alert("r4-newer"))  # while the post was under way
    box.delivered(sent)
    assert list(box.resolved.values()) == [alert("r4-newer")]
    assert not box.fired
