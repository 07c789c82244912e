"""The resident display as residents see it: a real Mosquitto, the real ``learnroom display``
process and Debian's Chromium driven by Playwright, with axe-core checking WCAG 2.1 AA."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from playwright.sync_api import Browser, Page

from gateway.launch.broker import Mosquitto, free_port
from gateway.models import (
    EnvironmentData,
    LockerData,
    OccupancyData,
    SlotState,
    StatusData,
    make_envelope,
)
from tests.central.util import Publisher, wait_for
from tests.paths import ROOT

AXE = ROOT / ".cache" / "npm" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def publish(pub: Publisher, site: str, room: str, kind: str, data: Any, sub: str = "") -> None:
    env = make_envelope(site, room, data, datetime.now(UTC), 1)
    topic = f"learnroom/v1/{site}/{room}/{kind}" + (f"/{sub}" if sub else "")
    pub.client.publish(topic, env.model_dump_json(), qos=1, retain=True).wait_for_publish(10)


def room_state(pub: Publisher, site: str, room: str, *, people: int, co2: float) -> None:
    publish(pub, site, room, "status", StatusData(online=True, version="test"))
    occ = OccupancyData(
        people=people, occupied=people > 0, capacity=20, seats_total=8, seats_free=8 - people
    )
    publish(pub, site, room, "occupancy", occ)
    publish(pub, site, room, "environment", EnvironmentData(co2_ppm=co2, temperature_c=21.5))
    slots = [SlotState(slot=str(i), present=i < 3, charging=True) for i in range(4)]
    publish(pub, site, room, "lockers", LockerData(door_open=False, slots=slots), "tablets")


@contextlib.contextmanager
def running_display(
    mosquitto: Mosquitto,
    tmp_path: Path,
    extra: str = "",
    settings: str = "",
    *,
    rooms: int = 3,
    report_interval_s: float = 2,
) -> Iterator[str]:
    """The real ``learnroom display`` process on a free port, ready once it knows ``rooms``."""
    port, metrics_port = free_port(), free_port()
    config = tmp_path / "central.toml"
    config.write_text(
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n'
        f"[display]\nport = {port}\nmin_count = 3\nreport_interval_s = {report_interval_s}\n"
        f"metrics_port = {metrics_port}\n"
        f'client_id = "display-{port}"\n'
        + settings
        + '[display.sites]\n"bibliothek-mitte" = "Stadtbibliothek Mitte"\n'
        '"schule-nord" = "Gesamtschule Nord"\n'
        '[[display.rooms]]\nsite = "bibliothek-mitte"\nroom = "lernraum-1"\n'
        'name = "Lernraum 1 (Erdgeschoss)"\nname_en = "Study room 1 (ground floor)"\n' + extra
    )
    log = (tmp_path / "display.log").open("wb")
    proc = subprocess.Popen(  # the real command, as a site runs it
        [sys.executable, "-m", "gateway", "display", "-c", str(config)],
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    (tmp_path / "display.pid").write_text(str(proc.pid))
    (tmp_path / "metrics.url").write_text(f"http://127.0.0.1:{metrics_port}/metrics")

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as resp:  # noqa: S310
                return bool(json.loads(resp.read())["rooms"] == rooms)
        except OSError:
            return False

    try:
        wait_for(ready, 20, f"the display serves {rooms} rooms")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def three_rooms(pub: Publisher) -> None:
    """Retained state first, then the display: it must show the present at once."""
    room_state(pub, "bibliothek-mitte", "lernraum-1", people=0, co2=650)
    room_state(pub, "bibliothek-mitte", "lernraum-2", people=6, co2=1400)
    room_state(pub, "schule-nord", "raum-204", people=2, co2=900)


@pytest.fixture
def display(mosquitto: Mosquitto, pub: Publisher, tmp_path: Path) -> Iterator[str]:
    three_rooms(pub)
    with running_display(mosquitto, tmp_path) as url:
        yield url


def open_page(
    browser: Browser, url: str, *, width: int = 1280, height: int = 900, **kw: Any
) -> Page:
    context = browser.new_context(viewport={"width": width, "height": height}, **kw)
    page = context.new_page()
    page.goto(url)
    return page


def card(page: Page, site: str, room: str) -> str:
    return page.locator(f"#room-{site}--{room}").inner_text()


def test_the_page_shows_every_room_from_retained_state(display: str, browser: Browser):
    page = open_page(browser, display, locale="de-DE", extra_http_headers={"Accept-Language": "de"})
    assert page.locator("html").get_attribute("lang") == "de"
    assert page.locator("h1").inner_text() == "Freie Lernräume"
    assert page.locator("h2").all_inner_texts() == ["Stadtbibliothek Mitte", "Gesamtschule Nord"]
    # rooms without a calendar are open learning spaces: they lead with their seats
    free = card(page, "bibliothek-mitte", "lernraum-1")
    assert "Lernraum 1 (Erdgeschoss)" in free
    assert "8 Plätze frei (von 8)" in free
    assert "3 von 4 Geräten ausleihbar" in free
    assert "Luft: gut" in free
    busy = card(page, "bibliothek-mitte", "lernraum-2")
    assert "2 Plätze frei" in busy
    assert "Belegt" not in busy, "people in an open space with free seats do not occupy it"
    assert "6 Personen" in busy
    assert "Luft: lüften empfohlen" in busy
    # two people: below the privacy minimum of three
    few = card(page, "schule-nord", "raum-204")
    assert "wenige Personen" in few
    assert "2 Personen" not in few
    assert page.locator("#summary").inner_text() == "3 von 3 Räumen frei"
    page.context.close()


def test_an_mqtt_change_appears_and_an_offline_gateway_shows_no_current_data(
    display: str, browser: Browser, pub: Publisher, tmp_path: Path
):
    page = open_page(browser, f"{display}/?lang=en")
    assert "8 seats free" in card(page, "bibliothek-mitte", "lernraum-1")
    occ = OccupancyData(people=9, occupied=True, capacity=20, seats_total=8, seats_free=0)
    publish(pub, "bibliothek-mitte", "lernraum-1", "occupancy", occ)
    page.wait_for_function(
        "() => document.querySelector('#room-bibliothek-mitte--lernraum-1')"
        ".innerText.includes('Full')",
        timeout=5000,
    )
    text = card(page, "bibliothek-mitte", "lernraum-1")
    assert "9 people" in text
    assert page.locator("#announcer").inner_text() == "Study room 1 (ground floor): Full"
    assert page.locator("#summary").inner_text() == "2 of 3 rooms free"

    # the broker hands out the gateway's Last Will
    publish(pub, "bibliothek-mitte", "lernraum-1", "status", StatusData(online=False))
    page.wait_for_function(
        "() => document.querySelector('#room-bibliothek-mitte--lernraum-1')"
        ".innerText.includes('No current data')",
        timeout=5000,
    )
    text = card(page, "bibliothek-mitte", "lernraum-1")
    assert "seats" not in text and "Occupied" not in text and "Free" not in text
    _, _, metrics = get((tmp_path / "metrics.url").read_text())
    assert b"learnroom_display_open_pages 1.0" in metrics
    assert b"learnroom_display_rooms_live 2.0" in metrics
    page.context.close()


def test_a_silent_gateway_turns_to_no_current_data(display: str, browser: Browser):
    """Nothing for three report intervals (2 s each here): no stale "free"."""
    page = open_page(browser, f"{display}/site/schule-nord?lang=en")
    assert page.locator("li.room").count() == 1
    page.wait_for_function(
        "() => document.querySelector('#room-schule-nord--raum-204')"
        ".innerText.includes('No current data')",
        timeout=15000,
    )
    page.context.close()


@pytest.mark.parametrize("lang", ["de", "en"])
def test_no_wcag_aa_violations_and_screenshots(display: str, browser: Browser, lang: str):
    if not AXE.exists():
        pytest.fail(f"axe-core missing at {AXE}; run scripts/test (npm install axe-core)")
    ARTIFACTS.mkdir(exist_ok=True)
    for width, height, kiosk in ((1920, 1080, True), (390, 844, False), (1280, 900, False)):
        url = f"{display}/?lang={lang}" + ("&kiosk=1" if kiosk else "")
        page = open_page(browser, url, width=width, height=height)
        page.add_script_tag(content=AXE.read_text())
        result = page.evaluate(
            "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})",
            WCAG_AA,
        )
        problems = [
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
            for v in result["violations"]
        ]
        assert not problems, f"{lang} {width}x{height}: " + "; ".join(problems)
        assert result["passes"], "axe ran its checks"
        name = f"display-{lang}-{width}x{height}.png"
        page.screenshot(path=str(ARTIFACTS / name), full_page=not kiosk)
        page.context.close()


def test_language_follows_accept_language_and_the_switch(display: str, browser: Browser):
    page = open_page(browser, display, extra_http_headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "Free learning rooms"
    page.get_by_role("link", name="Deutsch").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "de"
    assert "Plätze frei" in card(page, "bibliothek-mitte", "lernraum-1")
    page.context.close()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Message, bytes]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def test_the_json_api_matches_its_openapi_description(display: str):
    status, _, body = get(f"{display}/openapi.json")
    assert status == 200
    spec = json.loads(body)
    schemas = spec["components"]["schemas"]
    room_schema = {"$ref": "#/components/schemas/RoomInfo", "components": spec["components"]}
    list_schema = spec["paths"]["/api/rooms"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"] | {"components": spec["components"]}
    assert "RoomInfo" in schemas

    status, headers, body = get(f"{display}/api/rooms")
    assert status == 200
    rooms = json.loads(body)
    jsonschema.validate(rooms, list_schema)
    assert {(r["site"], r["room"]) for r in rooms} == {
        ("bibliothek-mitte", "lernraum-1"),
        ("bibliothek-mitte", "lernraum-2"),
        ("schule-nord", "raum-204"),
    }
    few = next(r for r in rooms if r["room"] == "raum-204")
    assert (few["people"], few["people_few"]) == (None, True), "no count below the minimum"
    assert headers["Cache-Control"] == "public, max-age=5"

    status, headers, body = get(f"{display}/api/rooms/bibliothek-mitte/lernraum-2")
    one = json.loads(body)
    jsonschema.validate(one, room_schema)
    assert (one["status"], one["air"], one["devices_available"]) == ("occupied", "ventilate", 3)
    again, _, empty = get(
        f"{display}/api/rooms/bibliothek-mitte/lernraum-2", {"If-None-Match": headers["ETag"]}
    )
    assert (again, empty) == (304, b"")
    missing, _, _ = get(f"{display}/api/rooms/bibliothek-mitte/keller")
    assert missing == 404


def test_no_personal_data_in_anything_served(display: str):
    _, _, html = get(f"{display}/?lang=de")
    _, _, api = get(f"{display}/api/rooms")
    for text in (html.decode(), api.decode()):
        assert "borrower" not in text
        assert "badge" not in text.lower()


def ics(*events: tuple[datetime, datetime, str]) -> str:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//learnroom//EN"]
    for n, (start, end, title) in enumerate(events):
        lines += [
            "BEGIN:VEVENT",
            f"UID:booking-{n}@example.org",
            f"DTSTAMP:{start:%Y%m%dT%H%M%SZ}",
            f"DTSTART:{start:%Y%m%dT%H%M%SZ}",
            f"DTEND:{end:%Y%m%dT%H%M%SZ}",
            f"SUMMARY:{title}",
            "ORGANIZER;CN=Erika Mustermann:mailto:erika@example.org",
            "END:VEVENT",
        ]
    return "\r\n".join([*lines, "END:VCALENDAR", ""])


def shown(what: str, at: str, when: datetime, now: datetime) -> str:
    """As the page says it: the time, and the weekday when it is not today (Berlin)."""
    berlin = ZoneInfo("Europe/Berlin")
    local = when.astimezone(berlin)
    if local.date() == now.astimezone(berlin).date():
        return f"{what} {at + ' ' if at else ''}{local:%H:%M}"
    return f"{what} {local:%a} {at + ' ' if at else ''}{local:%H:%M}"


def test_bookings_show_as_booked_probably_free_and_free_until_without_their_titles(
    mosquitto: Mosquitto, pub: Publisher, browser: Browser, tmp_path: Path
):
    from tests.mqtt_util import Collector

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    # lernraum-1: booked since 20 min, nobody came; lernraum-2: occupied and booked;
    # raum-204: free now, booked from in two hours
    r1 = (now - timedelta(minutes=20), now + timedelta(minutes=40), "Geheimes Treffen")
    (tmp_path / "r1.ics").write_text(ics(r1))
    r2 = (now - timedelta(minutes=5), now + timedelta(hours=1), "Nachhilfe Meier")
    (tmp_path / "r2.ics").write_text(ics(r2))
    later = now + timedelta(hours=2)
    (tmp_path / "r204.ics").write_text(ics((later, later + timedelta(hours=1), "Elternabend")))
    extra = (
        'calendar = "r1.ics"\n'
        '[[display.rooms]]\nsite = "bibliothek-mitte"\nroom = "lernraum-2"\n'
        'calendar = "r2.ics"\n'
        '[[display.rooms]]\nsite = "schule-nord"\nroom = "raum-204"\ncalendar = "r204.ics"\n'
    )
    three_rooms(pub)
    room_state(pub, "schule-nord", "raum-204", people=0, co2=700)
    with (
        Collector(mosquitto.port, "learnroom/v1/+/+/events") as events,
        running_display(mosquitto, tmp_path, extra) as url,
    ):
        page = open_page(browser, f"{url}/?lang=en")
        first = card(page, "bibliothek-mitte", "lernraum-1")
        assert "Probably free" in first
        assert "booked, but nobody came" in first
        second = card(page, "bibliothek-mitte", "lernraum-2")
        assert "Occupied" in second
        assert shown("next free", "at", now + timedelta(hours=1), now) in second
        r204 = card(page, "schule-nord", "raum-204")
        assert "Free" in r204
        assert shown("free until", "", later, now) in r204
        html = page.content()
        for secret in ("Geheimes Treffen", "Nachhilfe", "Elternabend", "Erika", "erika@"):
            assert secret not in html
        _, _, api = get(f"{url}/api/rooms")
        assert b"Geheimes" not in api and b"erika" not in api
        wait_for(lambda: bool(events.messages), 10, "the no-show is published")
        (event,) = [m.json for m in events.messages]
        assert (event["site"], event["room"], event["data"]["type"]) == (
            "bibliothek-mitte",
            "lernraum-1",
            "no_show",
        )
        page.context.close()


def test_the_kiosk_pages_through_the_rooms_by_itself(
    mosquitto: Mosquitto, pub: Publisher, browser: Browser, tmp_path: Path
):
    three_rooms(pub)
    settings = "kiosk_rooms_per_page = 2\nkiosk_page_s = 1\n"
    with running_display(mosquitto, tmp_path, settings=settings) as url:
        page = open_page(browser, f"{url}/?kiosk=1&lang=en", width=1920, height=1080)
        visible = "() => [...document.querySelectorAll('li.room')].filter(li => !li.hidden)"
        first = page.evaluate(f"({visible})().map(li => li.id)")
        assert len(first) == 2
        assert page.locator("#pager").inner_text() == "Page 1 of 2"
        page.wait_for_function("() => document.querySelector('#pager').innerText === 'Page 2 of 2'")
        second = page.evaluate(f"({visible})().map(li => li.id)")
        assert second == ["room-schule-nord--raum-204"]
        page.wait_for_function("() => document.querySelector('#pager').innerText === 'Page 1 of 2'")
        page.context.close()


def test_an_unreadable_calendar_is_said_not_hidden(
    mosquitto: Mosquitto, pub: Publisher, browser: Browser, tmp_path: Path
):
    """A room whose bookings cannot be read may be booked: the page says so."""
    three_rooms(pub)
    closed = free_port()  # nothing listens there
    extra = f'calendar = "http://127.0.0.1:{closed}/lernraum-1.ics"\n'
    with running_display(mosquitto, tmp_path, extra) as url:
        page = open_page(browser, f"{url}/?lang=en")
        text = card(page, "bibliothek-mitte", "lernraum-1")
        assert "Free" in text
        assert "bookings cannot be read just now" in text
        assert "bookings cannot" not in card(page, "bibliothek-mitte", "lernraum-2")
        _, _, body = get(f"{url}/api/rooms/bibliothek-mitte/lernraum-1")
        info = json.loads(body)
        assert (info["bookings_known"], info["free_until"]) == (False, None)
        page.context.close()
    assert "calendar of bibliothek-mitte/lernraum-1" in (tmp_path / "display.log").read_text()
