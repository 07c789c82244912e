"""Open learning spaces and bookable rooms as residents see them (issue 15, item 3).

The real ``learnroom display`` process, a real Mosquitto and Debian's Chromium: an open space
leads with its seats (never "occupied" while a seat is free), a bookable room with booked or
free and today's free times as a list a screen reader reads, the bar beside it hidden from it.
axe-core checks WCAG 2.1 AA in both languages and three viewports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page

from gateway.central.config import load_central_config
from gateway.central.display.calendars import RoomCalendar
from gateway.central.display.sample import DEMO_HOURS, SITES, demo_rooms, display_rooms
from gateway.central.hours import OpeningHours
from gateway.errors import ConfigError
from gateway.launch.broker import Mosquitto
from gateway.models import OccupancyData
from tests.central.display.test_display import (
    ARTIFACTS,
    AXE,
    WCAG_AA,
    get,
    ics,
    open_page,
    publish,
    room_state,
    running_display,
)
from tests.central.util import Publisher, wait_for

BERLIN = ZoneInfo("Europe/Berlin")
OPEN = "#room-bibliothek-mitte--lernraum-1"
FULL = "#room-bibliothek-mitte--lernraum-2"
BOOKABLE = "#room-schule-nord--raum-204"

ROOMS = """kind = "open"
[[display.rooms]]
site = "bibliothek-mitte"
room = "lernraum-2"
name = "Lesesaal Süd"
name_en = "Reading room south"
[[display.rooms]]
site = "schule-nord"
room = "raum-204"
name = "Gruppenraum Bücherwürmer"
name_en = "Group room Bookworms"
kind = "bookable"
calendar = "raum-204.ics"
"""


def free_today(bookings: list[tuple[datetime, datetime]], now: datetime) -> list[str]:
    """Today's free times (the room is always open) as the English list says them."""
    today = now.astimezone(BERLIN).date()
    day_start = datetime.combine(today, time(0), BERLIN).astimezone(UTC)
    day_end = datetime.combine(today + timedelta(days=1), time(0), BERLIN).astimezone(UTC)
    free, cur = [], day_start
    for s, e in sorted(bookings):
        if s > cur:
            free.append((cur, min(s, day_end)))
        cur = max(cur, e)
    if cur < day_end:
        free.append((cur, day_end))

    def hhmm(t: datetime, end: bool = False) -> str:
        local = t.astimezone(BERLIN)
        return "24:00" if end and local.time() == time(0) else f"{local:%H:%M}"

    return [
        ("now" if s <= now else hhmm(s)) + f" to {hhmm(e, end=True)}"
        for s, e in free
        if s < day_end and e > now
    ]


@pytest.fixture
def kinds(mosquitto: Mosquitto, pub: Publisher, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """An open space with 5 of 8 seats free and people in it, a full one, and a bookable
    room booked since 5 minutes with one more booking in an hour; its expected free times."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    bookings = [
        (now - timedelta(minutes=5), now + timedelta(minutes=30)),
        (now + timedelta(hours=1), now + timedelta(hours=2)),
    ]
    (tmp_path / "raum-204.ics").write_text(ics(*[(s, e, "Lerngruppe Mathe") for s, e in bookings]))
    room_state(pub, "bibliothek-mitte", "lernraum-1", people=3, co2=650)
    room_state(pub, "bibliothek-mitte", "lernraum-2", people=6, co2=900)
    room_state(pub, "schule-nord", "raum-204", people=0, co2=500)
    full = OccupancyData(people=9, occupied=True, capacity=20, seats_total=8, seats_free=0)
    publish(pub, "bibliothek-mitte", "lernraum-2", "occupancy", full)
    # a long report interval: the rooms must not fall silent while the views are checked
    with running_display(mosquitto, tmp_path, ROOMS, report_interval_s=600) as url:
        # listed rooms are known before their retained state arrives: wait for it
        wait_for(lambda: _settled(url), 10, "every room's state and calendar")
        yield url, free_today(bookings, now)


def _settled(url: str) -> bool:
    rooms = json.loads(get(f"{url}/api/rooms")[2])
    seats = {r["room"]: r["seats_free"] for r in rooms}
    booked = any(r["status"] == "booked" for r in rooms)
    return seats == {"lernraum-1": 5, "lernraum-2": 0, "raum-204": 8} and booked


def look(page: Page, selector: str) -> dict[str, Any]:
    """What a user sees of a card: its text, its colour class, its free-time list."""
    result: dict[str, Any] = page.locator(selector).evaluate(
        """li => ({
            text: li.innerText,
            classes: [...li.querySelector('article').classList],
            slots: [...li.querySelectorAll('ul.slots > li')].map(x => x.innerText),
        })"""
    )
    return result


WORDS = {
    "de": {"seats": "5 Plätze frei", "full": "Voll", "booked": "Gebucht", "today": "Heute frei"},
    "en": {"seats": "5 seats free", "full": "Full", "booked": "Booked", "today": "Free today"},
}


@pytest.mark.parametrize("lang", ["de", "en"])
def test_an_open_space_leads_with_seats_and_a_bookable_room_lists_todays_free_times(
    kinds: tuple[str, list[str]], browser: Browser, lang: str
):
    url, expected = kinds
    words = WORDS[lang]
    page = open_page(browser, f"{url}/?lang={lang}")
    open_space = look(page, OPEN)
    assert words["seats"] in open_space["text"]
    assert "status-free" in open_space["classes"], "green while a seat is free"
    for busy in ("Belegt", "Besetzt", "Occupied"):
        assert busy not in open_space["text"]
    assert open_space["slots"] == [], "an open space has no booking timeline"

    full = look(page, FULL)
    assert words["full"] in full["text"]
    assert "status-full" in full["classes"]
    assert ("Lesesaal Süd" if lang == "de" else "Reading room south") in full["text"]

    bookable = look(page, BOOKABLE)
    assert ("Gruppenraum Bücherwürmer" if lang == "de" else "Group room Bookworms") in bookable[
        "text"
    ]
    assert words["booked"] in bookable["text"]
    assert "status-booked" in bookable["classes"]
    de = {"now": "jetzt", " to ": " bis "}
    slots = expected if lang == "en" else [_de(s, de) for s in expected]
    assert bookable["slots"] == slots
    # what a screen reader gets: a heading and a list of times; the bar is hidden from it
    today = page.locator(BOOKABLE).get_by_role("region", name=words["today"])
    assert today.get_by_role("list").get_by_role("listitem").all_inner_texts() == slots
    tree = today.aria_snapshot()
    assert f'heading "{words["today"]}"' in tree and "- list:" in tree
    assert "00:00" not in tree, "the bar's labels (from 00:00) are hidden from screen readers"
    assert page.locator(f"{BOOKABLE} .timeline").get_attribute("aria-hidden") == "true"
    assert "Lerngruppe" not in page.content(), "times only, never titles"
    page.context.close()


def _de(text: str, words: dict[str, str]) -> str:
    for en, de in words.items():
        text = text.replace(en, de)
    return text


@pytest.mark.parametrize("lang", ["de", "en"])
def test_the_new_views_have_no_wcag_aa_violations(
    kinds: tuple[str, list[str]], browser: Browser, lang: str
):
    """Three viewports as for the other views; a screenshot of each card for a human look."""
    url, _ = kinds
    if not AXE.exists():
        pytest.fail(f"axe-core missing at {AXE}; run scripts/test (npm install axe-core)")
    ARTIFACTS.mkdir(exist_ok=True)
    for width, height, kiosk in ((1920, 1080, True), (390, 844, False), (1280, 900, False)):
        page = open_page(
            browser,
            f"{url}/?lang={lang}" + ("&kiosk=1" if kiosk else ""),
            width=width,
            height=height,
        )
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
        assert result["passes"]
        # the kiosk pages through sites and rooms; a card's own parts stay shown
        assert page.locator(f"{BOOKABLE} ul.slots").is_visible(), f"{width}x{height}"
        for selector, view in ((OPEN, "open"), (BOOKABLE, "bookable")):
            assert page.locator(selector).is_visible(), f"{view} on the first page"
            if width == 1280:
                name = f"display-{view}-{lang}.png"
                page.locator(selector).screenshot(path=str(ARTIFACTS / name))
        page.context.close()


def test_the_api_gives_names_kinds_and_free_times_and_keeps_every_old_meaning(
    kinds: tuple[str, list[str]],
):
    url, expected = kinds
    _, _, body = get(f"{url}/api/rooms")
    rooms = {r["room"]: r for r in json.loads(body)}
    open_space, full, bookable = rooms["lernraum-1"], rooms["lernraum-2"], rooms["raum-204"]
    assert (open_space["kind"], open_space["seats_free"]) == ("open", 5)
    # additive: status still says what it always said (people there), the page leads with seats
    assert open_space["status"] == "occupied"
    assert (full["name"], full["name_en"], full["site_name"]) == (
        "Lesesaal Süd",
        "Reading room south",
        "Stadtbibliothek Mitte",
    )
    assert (bookable["kind"], bookable["status"], bookable["name"]) == (
        "bookable",
        "booked",
        "Gruppenraum Bücherwürmer",
    )
    assert bookable["site_name"] == "Gesamtschule Nord"
    now = datetime.now(UTC)
    left = [s for s in bookable["free_today"] if datetime.fromisoformat(s["end"]) > now]
    assert len(left) == len(expected)
    assert open_space["free_today"] is None, "no calendar, no free times"


@pytest.mark.parametrize(
    ("room", "field", "says"),
    [
        ('kind = "bookable"\n', "display.rooms.0.kind", "needs its booking calendar"),
        ('kind = "offen"\n', "display.rooms.0.kind", "'open' or 'bookable'"),
    ],
)
def test_a_wrong_kind_names_file_and_field(tmp_path: Path, room: str, field: str, says: str):
    path = tmp_path / "central.toml"
    path.write_text('[[display.rooms]]\nsite = "schule-nord"\nroom = "raum-204"\n' + room)
    with pytest.raises(ConfigError) as err:
        load_central_config(path)
    text = str(err.value)
    assert f"{path}: {field}: " in text and says in text


def test_the_kind_defaults_to_bookable_with_a_calendar_and_open_without(tmp_path: Path):
    path = tmp_path / "central.toml"
    path.write_text(
        '[[display.rooms]]\nsite = "a"\nroom = "b"\ncalendar = "b.ics"\n'
        '[[display.rooms]]\nsite = "a"\nroom = "c"\n'
    )
    rooms = load_central_config(path).display.rooms
    assert [r.room_kind for r in rooms] == ["bookable", "open"]


def test_status_carries_the_days_free_times_and_follows_a_new_load(tmp_path: Path):
    """The timeline's data comes with every status; a reload with a new booking shows in it."""
    day = datetime(2026, 12, 2, 12, 0, tzinfo=BERLIN)

    def at(hour: int) -> datetime:  # ics() writes UTC
        return day.replace(hour=hour).astimezone(UTC)

    hours = OpeningHours.model_validate({"wed": ["08:00-20:00"]})
    path = tmp_path / "room.ics"
    path.write_text(ics((at(10), at(11), "A")))
    cal = RoomCalendar(path, BERLIN, hours)
    assert cal.load(day)

    def spans(slots: Any) -> list[str]:
        return [f"{s:%H:%M}-{e:%H:%M}" for s, e in slots]

    status = cal.status(day)
    assert spans(status.open_today) == ["08:00-20:00"]
    assert spans(status.free_today) == ["08:00-10:00", "11:00-20:00"]
    path.write_text(ics((at(10), at(11), "A"), (at(12), at(13), "B")))
    assert cal.load(day)
    assert spans(cal.status(day).free_today) == ["08:00-10:00", "11:00-12:00", "13:00-20:00"]
    assert spans(cal.status(day + timedelta(days=1)).open_today) == [], "closed on Thursday"


def test_the_demo_sample_has_named_rooms_of_both_kinds_and_one_no_show(tmp_path: Path):
    """What ``learnroom demo`` gives the display: names with umlauts, open and bookable
    rooms, and calendars for the simulated day whose first booking nobody attends."""
    day = datetime(2026, 12, 2, tzinfo=BERLIN).date()
    plan = demo_rooms(6, 2)
    listed = display_rooms(plan, day, tmp_path)
    assert set(SITES.values()) >= {"Stadtbücherei Mitte", "Gesamtschule Nord"}
    assert {r.room_kind for r in listed} == {"open", "bookable"}
    assert all(r.name and r.name_en for r in listed)
    (no_show,) = [r for r in plan if r.no_show]
    hours = OpeningHours.model_validate(DEMO_HOURS)
    for room in listed:
        if room.calendar is None:
            continue
        cal = RoomCalendar(Path(room.calendar), BERLIN, hours)
        at_eight = datetime.combine(day, time(8, 5), BERLIN)
        assert cal.load(at_eight)
        booked = cal.status(at_eight).booked_now
        assert booked == ((room.site, room.room) == (no_show.site, no_show.room))
        assert len(cal.status(at_eight).free_today) >= 3, "free times between bookings"
