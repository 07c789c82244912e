"""The display against what breaks it (issue 11): a calendar host that drips, a calendar that
would expand without end, one that stops answering, a page that falls behind its stream, a
message that meets a bug, a loop that hangs. The real ``learnroom display`` process, a real
Mosquitto, Chromium for pages, and misbehaving calendar hosts written here on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest
from playwright.sync_api import Browser, Page

from gateway.launch.broker import Mosquitto
from gateway.models import OccupancyData
from tests.central.display.test_display import (
    card,
    get,
    ics,
    open_page,
    publish,
    room_state,
    running_display,
    three_rooms,
)
from tests.central.util import Publisher, wait_for

UNREADABLE = "bookings cannot be read just now"


class CalendarHost:
    """A calendar host the test steers: ``/cal.ics`` answers ``status`` and ``body``;
    ``/slow.ics`` promises 100 kB and drips one byte every 2 s, as long as the client stays."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b""
        self.dripped_for: list[float] = []  # how long each slow client stayed
        self.closing = threading.Event()
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/slow.ics":
                    self._drip()
                    return
                self.send_response(host.status)
                self.send_header("Content-Type", "text/calendar; charset=utf-8")
                self.send_header("Content-Length", str(len(host.body)))
                self.end_headers()
                self.wfile.write(host.body)

            def _drip(self) -> None:
                started = time.monotonic()
                self.send_response(200)
                self.send_header("Content-Type", "text/calendar")
                self.send_header("Content-Length", "100000")
                self.end_headers()
                try:
                    while not host.closing.is_set():
                        self.wfile.write(b"B")
                        self.wfile.flush()
                        host.closing.wait(2)
                except OSError:  # the display hung up: what we wait for
                    host.dripped_for.append(time.monotonic() - started)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def host() -> Iterator[CalendarHost]:
    h = CalendarHost()
    thread = threading.Thread(target=h.httpd.serve_forever, name="calendar-host", daemon=True)
    thread.start()
    yield h
    h.closing.set()
    h.httpd.shutdown()
    h.httpd.server_close()
    thread.join()


def wait_card(page: Page, site: str, room: str, text: str, timeout_ms: int = 15000) -> str:
    page.wait_for_function(
        "([id, text]) => document.getElementById(id).innerText.includes(text)",
        arg=[f"room-{site}--{room}", text],
        timeout=timeout_ms,
    )
    return card(page, site, room)


def metric(tmp_path: Path, name: str) -> float:
    """A sample of the display's /metrics, 0 when absent."""
    _, _, body = get((tmp_path / "metrics.url").read_text())
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


# -- calendars ----------------------------------------------------------------------------


def test_a_dripping_calendar_host_delays_no_other_room(
    mosquitto: Mosquitto, pub: Publisher, browser: Browser, host: CalendarHost, tmp_path: Path
):
    """lernraum-1's host drips a byte every 2 s; raum-204's booking still shows at once, and
    the drip is cut at the deadline (3 s), not held for as long as the host likes."""
    now = datetime.now(UTC)
    host.body = ics((now - timedelta(minutes=5), now + timedelta(hours=1), "Elternabend")).encode()
    extra = (  # the slow one first: calendars used to load one after another
        f'calendar = "{host.url}/slow.ics"\n'
        f'[[display.rooms]]\nsite = "schule-nord"\nroom = "raum-204"\n'
        f'calendar = "{host.url}/cal.ics"\n'
    )
    three_rooms(pub)
    room_state(pub, "schule-nord", "raum-204", people=0, co2=700)
    with running_display(mosquitto, tmp_path, extra, "calendar_timeout_s = 3\n") as url:
        page = open_page(browser, f"{url}/?lang=en")
        booked = wait_card(page, "schule-nord", "raum-204", "Booked", 10000)
        assert UNREADABLE not in booked
        assert UNREADABLE in card(page, "bibliothek-mitte", "lernraum-1")
        wait_for(lambda: bool(host.dripped_for), 15, "the display hangs up on the drip")
        assert host.dripped_for[0] < 10, "cut at its deadline of 3 s"
        page.context.close()
    log = (tmp_path / "display.log").read_text()
    assert "calendar of bibliothek-mitte/lernraum-1: fetch failed: TimeoutError" in log


SECONDLY = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//learnroom//EN\r\nBEGIN:VEVENT\r\n"
    "UID:every-second@example.org\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start}\r\n"
    "DURATION:PT1S\r\nRRULE:FREQ=SECONDLY\r\nSUMMARY:Jede Sekunde\r\nEND:VEVENT\r\n"
    "END:VCALENDAR\r\n"
)


def test_an_endless_secondly_series_is_refused_not_expanded(
    mosquitto: Mosquitto, pub: Publisher, browser: Browser, host: CalendarHost, tmp_path: Path
):
    """Millions of occurrences in the window once took the display to 760 MB: now the rule
    is refused before expansion, counted, logged, and the room says it cannot read bookings."""
    start = datetime.now(UTC) - timedelta(days=1)
    host.body = SECONDLY.format(start=f"{start:%Y%m%dT%H%M%SZ}").encode()
    three_rooms(pub)
    with running_display(mosquitto, tmp_path, f'calendar = "{host.url}/cal.ics"\n') as url:
        refused = 'learnroom_display_calendar_loads_total{result="refused"}'
        wait_for(lambda: metric(tmp_path, refused) >= 1, 20, "the calendar is refused")
        page = open_page(browser, f"{url}/?lang=en")
        assert UNREADABLE in card(page, "bibliothek-mitte", "lernraum-1")
        page.context.close()
        pid = int((tmp_path / "display.pid").read_text())
        rss_mb = psutil.Process(pid).memory_info().rss / 2**20
        assert rss_mb < 250, f"the display holds {rss_mb:.0f} MB"
    log = (tmp_path / "display.log").read_text()
    assert "refused: series of over 20000 occurrences" in log


def test_a_calendar_not_read_for_a_while_says_so_instead_of_free_until(
    mosquitto: Mosquitto, pub: Publisher, browser: Browser, host: CalendarHost, tmp_path: Path
):
    """The last good data serves for ``calendar_stale_after_s``; then the room no longer
    gives times that would miss a booking made since."""
    now = datetime.now(UTC)
    later = now + timedelta(hours=2)
    host.body = ics((later, later + timedelta(hours=1), "Elternabend")).encode()
    three_rooms(pub)
    settings = "calendar_refresh_s = 1\ncalendar_stale_after_s = 4\n"
    extra = f'calendar = "{host.url}/cal.ics"\n'
    # the rooms must not fall silent (three report intervals) while the calendar breaks and
    # heals: a silent room gives no times at all, and that is another test
    with running_display(mosquitto, tmp_path, extra, settings, report_interval_s=600) as url:
        page = open_page(browser, f"{url}/?lang=en")
        first = wait_card(page, "bibliothek-mitte", "lernraum-1", "free until")
        assert UNREADABLE not in first
        host.status = 500  # the calendar host breaks
        text = wait_card(page, "bibliothek-mitte", "lernraum-1", UNREADABLE)
        assert "free until" not in text
        _, _, body = get(f"{url}/api/rooms/bibliothek-mitte/lernraum-1")
        info = json.loads(body)
        assert (info["bookings_known"], info["free_until"]) == (False, None)
        host.status = 200  # and heals
        wait_card(page, "bibliothek-mitte", "lernraum-1", "free until")
        page.context.close()


# -- event streams ------------------------------------------------------------------------


def test_a_page_that_falls_behind_reconnects_and_shows_the_latest_state(
    mosquitto: Mosquitto, pub: Publisher, browser: Browser, tmp_path: Path
):
    """30 rooms fall silent in the same second; the page's queue holds 4. Its stream is
    closed, the browser reconnects and gets every card; later changes arrive too."""
    three_rooms(pub)
    with running_display(
        mosquitto, tmp_path, settings="stream_queue = 4\n", report_interval_s=4
    ) as url:
        occ = OccupancyData(people=0, occupied=False, capacity=10)
        for n in range(30):
            publish(pub, "flut", f"raum-{n:02d}", "occupancy", occ)
        wait_for(lambda: len(json.loads(get(f"{url}/api/rooms")[2])) == 33, 10, "33 rooms")
        page = open_page(browser, f"{url}/site/flut?lang=en")
        assert page.locator("li.room").count() == 30
        assert "Free" in card(page, "flut", "raum-29")
        page.wait_for_function(  # every room silent now: "no current data", never "free"
            "() => [...document.querySelectorAll('li.room')]"
            ".every(li => li.innerText.includes('No current data'))",
            timeout=20000,
        )
        assert metric(tmp_path, "learnroom_display_streams_overflowed_total") >= 1
        assert page.locator("#summary").inner_text() == "0 of 30 rooms free"
        # the new stream carries later changes too
        publish(pub, "flut", "raum-07", "occupancy", OccupancyData(people=4, occupied=True))
        wait_card(page, "flut", "raum-07", "Occupied", 10000)
        page.context.close()


# -- supervision and /healthz -------------------------------------------------------------


def healthz(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_healthz_on_both_ports_says_what_each_loop_does(
    mosquitto: Mosquitto, pub: Publisher, tmp_path: Path
):
    three_rooms(pub)
    with running_display(mosquitto, tmp_path) as url:
        metrics_health = (tmp_path / "metrics.url").read_text().replace("/metrics", "/healthz")
        status, body = healthz(metrics_health)
        assert status == 200, body
        assert body["status"] == "ok"
        loops = body["loops"]
        assert (loops["mqtt"]["state"], loops["ticker"]["state"]) == ("connected", "running")
        assert loops["calendars"]["state"] == "idle"
        status, body = healthz(f"{url}/healthz")
        assert (status, body["status"], body["rooms"]) == (200, "ok", 3)
        mosquitto.stop()  # the broker away: legitimately waiting, not failing
        wait_for(
            lambda: healthz(metrics_health)[1]["loops"]["mqtt"]["state"] == "reconnecting",
            20,
            "the display notices the broker is gone",
        )
        assert healthz(metrics_health)[0] == 200
