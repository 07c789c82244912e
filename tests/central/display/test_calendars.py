"""Booking calendars from hand-written exports (Google, Outlook/Exchange, Nextcloud), checked the
way a resident reads the display: "free until 14:00", "next free at 15:30"."""

from __future__ import annotations

import contextlib
import socket
import threading
import tomllib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from gateway.central.display.calendars import RoomAvailability, RoomCalendar
from gateway.central.display.live import Availability
from gateway.central.hours import OpeningHours, Span
from tests.paths import FIXTURES as TEST_FIXTURES

FIXTURES = TEST_FIXTURES / "calendars"
BERLIN = ZoneInfo("Europe/Berlin")
#: The spec's example: weekdays 08-20, Saturday morning, Sunday closed.
HOURS = OpeningHours.model_validate(
    {
        **{day: ["08:00-20:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
        "sat": ["10:00-14:00"],
        "sun": [],
    }
)


def at(month: int, day: int, hh: int = 0, mm: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hh, mm, tzinfo=BERLIN)


def hm(value: datetime | None) -> str | None:
    """What the display prints: local weekday and time."""
    return None if value is None else value.astimezone(BERLIN).strftime("%a %H:%M")


def spans(items: list) -> list[str]:
    return [f"{hm(a)}-{b.astimezone(BERLIN):%H:%M}" for a, b in items]


def loaded(name: str, now: datetime, hours: OpeningHours = HOURS) -> RoomCalendar:
    cal = RoomCalendar(FIXTURES / name, BERLIN, hours)
    assert cal.load(now=now), cal.last_error
    return cal


# -- opening hours -----------------------------------------------------------------------


def test_opening_hours_from_toml_with_holidays() -> None:
    config = tomllib.loads(
        'mon = ["08:00-12:00", "13:00-20:00"]\nsat = "10:00-14:00"\nsun = []\n'
        "closed = [2026-12-24, 2026-12-31]\n"
    )
    hours = OpeningHours.model_validate(config)
    assert hours.closed == (date(2026, 12, 24), date(2026, 12, 31))
    # Monday 2026-05-04: a lunch break; Tuesday: not listed, so closed.
    assert spans(hours.day(date(2026, 5, 4))) == ["Mon 08:00-12:00", "Mon 13:00-20:00"]
    assert hours.day(date(2026, 5, 5)) == []
    assert spans(hours.day(date(2026, 5, 9))) == ["Sat 10:00-14:00"]
    # Christmas Eve 2026 is a Thursday, but it is in `closed`; so is a listed Monday.
    assert OpeningHours(mon=hours.mon, closed=(date(2026, 5, 4),)).day(date(2026, 5, 4)) == []
    # A JSON round trip (the display's API) gives the same hours.
    assert OpeningHours.model_validate_json(hours.model_dump_json()) == hours


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        ({"mon": ["8-20"]}, r"mon: '8-20' is not an opening period; write 'HH:MM-HH:MM'"),
        ({"tue": ["20:00-02:00"]}, r"tue: '20:00-02:00' closes before it opens; past midnight"),
        ({"wed": ["08:00-12:00", "11:00-14:00"]}, r"wed: periods 08:00-12:00 and 11:00-14:00"),
        ({"thu": ["08:00-25:00"]}, r"thu: '08:00-25:00' has a time outside 00:00-24:00"),
        ({"monday": ["08:00-20:00"]}, r"unknown key 'monday'.*days are mon, tue"),
        ({"fri": 8}, r"fri: expected a list like \['08:00-20:00'\]"),
        ({"timezone": "Berlin"}, r"unknown time zone 'Berlin'; use an IANA name"),
    ],
)
def test_opening_hours_errors_name_day_and_fix(hours: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OpeningHours.model_validate(hours)


def test_until_midnight_joins_the_next_morning() -> None:
    """A 24-hour study room: '24:00' and the next '00:00' are one open stretch, so the room
    is not "closing" at midnight."""
    hours = OpeningHours(
        fri=OpeningHours.model_validate({"fri": ["08:00-24:00"]}).fri,
        sat=OpeningHours.model_validate({"sat": ["00:00-02:00"]}).sat,
    )
    cal = RoomCalendar(FIXTURES / "nextcloud_week.ics", BERLIN, hours)
    assert cal.load(now=at(5, 1))
    # Friday 2026-05-08 is booked 18:00-20:00 in the fixture; after that it is free to 02:00.
    status = cal.status(at(5, 8, 21))
    assert status.open_now
    assert status.free_until == at(5, 9, 2)


def test_always_open_has_no_closing_time() -> None:
    cal = RoomCalendar(FIXTURES / "nextcloud_week.ics", BERLIN, OpeningHours.always_open())
    assert cal.load(now=at(5, 1))
    sunday = cal.status(at(5, 3, 3))
    assert sunday.open_now and sunday.free_until == at(5, 4, 10)
    # Beyond the last booking nothing ends the free time within the look-ahead.
    assert cal.status(at(5, 11, 10)).free_until is None


# -- daylight saving ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loaded_on", "before", "after"),
    [
        # Clocks go forward on Sunday 29 March 2026, back on Sunday 25 October 2026.
        (at(3, 20), at(3, 26, 9), at(4, 2, 9)),
        (at(10, 15), at(10, 22, 9), at(10, 29, 9)),
    ],
)
def test_weekly_booking_stays_at_nine_local_across_the_change(
    loaded_on: datetime, before: datetime, after: datetime
) -> None:
    cal = loaded("google_weekly.ics", loaded_on)
    for thursday in (before, after):
        booked = cal.bookings(thursday, thursday + timedelta(hours=1))
        assert spans(booked) == ["Thu 09:00-10:00"]
        assert hm(cal.status(thursday - timedelta(minutes=30)).free_until) == "Thu 09:00"
        assert hm(cal.status(thursday + timedelta(minutes=30)).next_free_at) == "Thu 10:00"
    # The same wall time is a different UTC hour on either side of the change.
    assert {before.astimezone(UTC).hour, after.astimezone(UTC).hour} == {7, 8}
    first = cal.bookings(before, before + timedelta(hours=1))[0].start.astimezone(UTC)
    second = cal.bookings(after, after + timedelta(hours=1))[0].start.astimezone(UTC)
    assert first.hour != second.hour


@pytest.mark.parametrize(
    ("loaded_on", "day", "hours_before", "total"),
    [(at(3, 20), date(2026, 3, 29), 9, 23), (at(10, 15), date(2026, 10, 25), 11, 25)],
)
def test_free_slots_on_the_change_day_have_real_lengths(
    loaded_on: datetime, day: date, hours_before: int, total: int
) -> None:
    """A 24-hour room booked 10:00-11:00 on the change day: the night before 10:00 is an hour
    shorter in March and an hour longer in October."""
    cal = loaded("google_weekly.ics", loaded_on, OpeningHours.always_open())
    slots = cal.free_slots(day)
    assert spans(slots) == ["Sun 00:00-10:00", "Sun 11:00-00:00"]
    lengths = [(b.astimezone(UTC) - a.astimezone(UTC)) / timedelta(hours=1) for a, b in slots]
    assert lengths == [hours_before, 13]
    assert sum(lengths) + 1 == total  # the day itself is 23 or 25 hours long


# -- series with exceptions --------------------------------------------------------------


def test_series_with_exdate_and_moved_occurrence() -> None:
    """Outlook: weekly Monday 10-12, 13 April deleted, 20 April moved to Tuesday 14-16."""
    cal = loaded("outlook_series.ics", at(4, 1))
    booked = cal.bookings(at(4, 1), at(5, 1))
    assert [f"{b.start:%d.%m %H:%M}-{b.end:%H:%M}" for b in booked] == [
        "06.04 10:00-12:00",
        "21.04 14:00-16:00",
        "27.04 10:00-12:00",
    ]
    assert cal.status(at(4, 13, 10, 30)).booked_now is False
    assert hm(cal.status(at(4, 13, 10, 30)).free_until) == "Mon 20:00"
    assert cal.status(at(4, 20, 10, 30)).booked_now is False
    moved = cal.status(at(4, 21, 15))
    assert moved.booked_now and hm(moved.current_booking_start) == "Tue 14:00"
    assert hm(moved.next_free_at) == "Tue 16:00"


def test_cancelled_event_is_not_a_booking() -> None:
    """Outlook keeps a cancelled meeting with STATUS:CANCELLED; the room is free then."""
    cal = loaded("outlook_series.ics", at(4, 1))
    wednesday = cal.status(at(4, 8, 12))
    assert wednesday.open_now and not wednesday.booked_now
    assert hm(wednesday.free_until) == "Wed 20:00"


# -- one week in Nextcloud: overlaps, zones, all-day, floating, free-time events --------


@pytest.fixture(scope="module")
def week() -> RoomCalendar:
    return loaded("nextcloud_week.ics", at(5, 1))


def test_overlapping_and_adjacent_bookings_merge(week: RoomCalendar) -> None:
    # 10-12, 11:30-13 and 13-14 on Monday 4 May are one block for the display.
    assert spans(week.bookings(at(5, 4), at(5, 5))) == ["Mon 10:00-14:00"]
    assert hm(week.status(at(5, 4, 9)).free_until) == "Mon 10:00"
    during = week.status(at(5, 4, 12, 30))
    assert during.booked_now and hm(during.current_booking_start) == "Mon 10:00"
    assert hm(during.current_booking_end) == "Mon 14:00"
    assert hm(during.next_free_at) == "Mon 14:00"
    assert spans(week.free_slots(date(2026, 5, 4))) == ["Mon 08:00-10:00", "Mon 14:00-20:00"]
    # With a lunch break inside the block, the afternoon period still counts.
    lunch = HOURS.model_copy(update={"mon": _two_periods()})
    cal = loaded("nextcloud_week.ics", at(5, 1), lunch)
    assert spans(cal.free_slots(date(2026, 5, 4))) == ["Mon 08:00-10:00", "Mon 14:00-20:00"]
    tuesday = ["Tue 08:00-14:00", "Tue 15:00-15:30", "Tue 16:30-20:00"]
    assert spans(cal.free_slots(date(2026, 5, 5))) == tuesday


def _two_periods() -> tuple[Span, ...]:
    return OpeningHours.model_validate({"mon": ["08:00-12:00", "13:00-20:00"]}).mon


def test_utc_and_new_york_events_show_in_local_time(week: RoomCalendar) -> None:
    # 12:00Z is 14:00 in Berlin; 09:30 in New York (EDT) is 15:30 in Berlin (CEST).
    assert spans(week.bookings(at(5, 5), at(5, 6))) == ["Tue 14:00-15:00", "Tue 15:30-16:30"]
    assert hm(week.status(at(5, 5, 13)).free_until) == "Tue 14:00"
    assert hm(week.status(at(5, 5, 14, 30)).next_free_at) == "Tue 15:00"
    assert hm(week.status(at(5, 5, 15, 10)).free_until) == "Tue 15:30"
    assert hm(week.status(at(5, 5, 16)).next_free_at) == "Tue 16:30"


def test_all_day_event_covers_the_local_day(week: RoomCalendar) -> None:
    assert spans(week.bookings(at(5, 6, 12), at(5, 6, 13))) == ["Wed 00:00-00:00"]
    assert week.free_slots(date(2026, 5, 6)) == []
    status = week.status(at(5, 6, 19, 59))
    assert status.open_now and status.booked_now
    assert hm(status.next_free_at) == "Thu 08:00"
    # The evening before is free up to closing, not up to the all-day event's midnight.
    assert hm(week.status(at(5, 5, 17)).free_until) == "Tue 20:00"


def test_cancelled_transparent_and_floating_events(week: RoomCalendar) -> None:
    """Thursday: a cancelled 10-12, a "show as free" note 13-14, a floating 16-17."""
    assert spans(week.free_slots(date(2026, 5, 7))) == ["Thu 08:00-16:00", "Thu 17:00-20:00"]
    assert not week.status(at(5, 7, 11)).booked_now
    assert not week.status(at(5, 7, 13, 30)).booked_now
    assert week.status(at(5, 7, 16, 30)).booked_now


def test_next_free_across_the_weekend(week: RoomCalendar) -> None:
    """Friday evening booked to closing, Saturday's hours booked, Sunday closed, Monday
    booked until 09:30: the display says "next free Monday 09:30"."""
    friday = week.status(at(5, 8, 18, 30))
    assert friday.open_now and friday.booked_now and friday.free_until is None
    assert hm(friday.next_free_at) == "Mon 09:30"
    sunday = week.status(at(5, 10, 12))
    assert not sunday.open_now and not sunday.booked_now
    assert sunday.free_until is None
    assert hm(sunday.next_free_at) == "Mon 09:30"
    assert week.free_slots(date(2026, 5, 10)) == []


def test_closed_holiday_is_skipped() -> None:
    """Ascension Day, Thursday 14 May 2026, is a holiday: next free is Friday morning."""
    holiday = HOURS.model_copy(update={"closed": (date(2026, 5, 14),)})
    cal = loaded("nextcloud_week.ics", at(5, 1), holiday)
    status = cal.status(at(5, 14, 10))
    assert not status.open_now and not status.booked_now
    assert hm(status.next_free_at) == "Fri 08:00"
    assert cal.free_slots(date(2026, 5, 14)) == []
    assert hm(cal.status(at(5, 13, 19)).free_until) == "Wed 20:00"


def test_status_fits_the_display_protocol(week: RoomCalendar) -> None:
    status: Availability = week.status(at(5, 4, 9))
    assert isinstance(status, RoomAvailability) and status.open_now
    assert week.status(at(5, 4, 9)).bookings_known
    # A year later the loaded window no longer covers the look-ahead: said, not guessed.
    assert not week.status(at(5, 4, 9, year=2027)).bookings_known


def test_naive_times_are_refused(week: RoomCalendar) -> None:
    with pytest.raises(ValueError, match="aware"):
        week.bookings(datetime(2026, 5, 4), datetime(2026, 5, 5))  # noqa: DTZ001


# -- privacy -----------------------------------------------------------------------------

#: Words from SUMMARY, DESCRIPTION, ORGANIZER, ATTENDEE, LOCATION and the calendar's name.
SECRETS = [
    "Okonkwo", "Abitur", "Jana", "sommer@", "Beamer", "Schachclub", "Elternabend", "Wagner",
    "eltern-7b", "Tagesordnung", "Bewerbungstraining", "Gruppenraum", "Referat", "Mira",
    "Haddad", "Tom Berg", "0171", "Boston", "Dana", "Prüfungstag", "Hausmeister", "Spieleabend",
    "Lernraum", "Stadtb", "Samstagskurs", "example",
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "now"),
    [
        ("google_weekly.ics", at(3, 20)),
        ("outlook_series.ics", at(4, 1)),
        ("nextcloud_week.ics", at(5, 1)),
    ],
)
def test_no_title_or_person_is_returned_or_kept(name: str, now: datetime) -> None:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    present = [s for s in SECRETS if s in text]
    assert len(present) >= 3  # the fixture does carry private data
    cal = loaded(name, now, OpeningHours.always_open())
    returned: list[object] = [cal, vars(cal), cal._snapshot]  # what it keeps, too
    t = now
    while t < now + timedelta(days=21):
        returned += [cal.status(t), cal.bookings(t, t + timedelta(days=1))]
        returned.append(cal.free_slots(t.date()))
        t += timedelta(hours=1)
    assert any(isinstance(r, list) and r and r[0].__class__.__name__ == "Booking" for r in returned)
    dump = "\n".join(repr(r) for r in returned)
    assert [s for s in present if s in dump] == []


def test_parse_error_does_not_quote_the_calendar(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ics"
    bad.write_text("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY Geheimtreffen\r\n")
    cal = RoomCalendar(bad, BERLIN, HOURS)
    assert not cal.load(now=at(5, 1))
    assert cal.last_error is not None and cal.last_error.startswith("parse failed")
    assert "Geheim" not in cal.last_error


# -- fetching ----------------------------------------------------------------------------


class _Server:
    """A calendar host the test steers: what it answers next."""

    def __init__(self) -> None:
        self.status = 200
        self.body = (FIXTURES / "nextcloud_week.ics").read_bytes()
        self.auth: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.auth.append(self.headers.get("Authorization"))
                self.send_response(server.status)
                self.send_header("Content-Type", "text/calendar; charset=utf-8")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    thread = threading.Thread(target=s.httpd.serve_forever, name="ics-server", daemon=True)
    thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()
    thread.join()


def seen(cal: RoomCalendar) -> tuple[str | None, datetime | None]:
    """``last_error`` and ``loaded_at``, read afresh (mypy would keep an earlier narrowing)."""
    return cal.last_error, cal.loaded_at


def test_fetch_keeps_last_good_data_on_failure(server: _Server) -> None:
    url = f"http://room:s3cret@127.0.0.1:{server.port}/remote.php/dav/private-8f3a9c/lr.ics"
    cal = RoomCalendar(url, BERLIN, HOURS, timeout_s=5)
    assert seen(cal)[0] is None and seen(cal)[1] is None
    assert not cal.status(at(5, 4, 11)).bookings_known

    assert cal.load(now=at(5, 1))
    assert seen(cal)[1] == at(5, 1) and seen(cal)[0] is None
    assert server.auth[-1] == "Basic cm9vbTpzM2NyZXQ="  # room:s3cret, not in the URL sent
    assert hm(cal.status(at(5, 4, 11)).next_free_at) == "Mon 14:00"

    server.status = 500
    assert not cal.load(now=at(5, 1, 0, 5))
    assert seen(cal)[0] == "fetch failed: HTTPError (HTTP 500)"
    assert seen(cal)[1] == at(5, 1)
    assert hm(cal.status(at(5, 4, 11)).next_free_at) == "Mon 14:00"

    server.status = 200  # an expired share link answers with a login page
    server.body = b"<html><body>Login: Mira Haddad</body></html>"
    assert not cal.load(now=at(5, 1, 0, 10))
    error = str(seen(cal)[0])
    assert error.startswith("parse failed") and "Mira" not in error
    assert hm(cal.status(at(5, 4, 11)).next_free_at) == "Mon 14:00"

    server.body = (FIXTURES / "outlook_series.ics").read_bytes()
    assert cal.load(now=at(5, 1, 0, 15))
    assert seen(cal)[0] is None and seen(cal)[1] == at(5, 1, 0, 15)
    assert not cal.status(at(5, 4, 11)).booked_now  # the new calendar has no 4 May booking
    # Neither the password nor the secret path is shown or logged.
    assert "s3cret" not in repr(cal) and "8f3a9c" not in cal.source


def test_fetch_from_a_dead_or_silent_host() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/x.ics"
        cal = RoomCalendar(url, BERLIN, HOURS, timeout_s=0.2)
        assert not cal.load(now=at(5, 1))
        assert cal.last_error == "fetch failed: TimeoutError"
    dead = RoomCalendar(url, BERLIN, HOURS)  # the port is closed now
    assert not dead.load(now=at(5, 1))
    assert dead.last_error == "fetch failed: URLError (ConnectionRefusedError)"
    missing = RoomCalendar(Path("/nonexistent/room.ics"), BERLIN, HOURS)
    assert not missing.load()
    assert missing.last_error == "fetch failed: FileNotFoundError"
    assert missing.status(at(5, 4, 11)).open_now  # opening hours still answer


async def test_aload_runs_in_a_thread(server: _Server) -> None:
    cal = RoomCalendar(f"webcal://127.0.0.1:{server.port}/lr.ics", BERLIN, HOURS)
    # webcal:// is https://; this test server speaks plain HTTP, so the fetch must fail ...
    assert not await cal.aload(now=at(5, 1))
    cal = RoomCalendar(f"http://127.0.0.1:{server.port}/lr.ics", BERLIN, HOURS)
    assert await cal.aload(now=at(5, 1))  # ... while http:// works
    assert hm(cal.status(at(5, 4, 9)).free_until) == "Mon 10:00"


def test_only_http_urls_and_files() -> None:
    with pytest.raises(ValueError, match=r"use an http\(s\):// or webcal:// URL"):
        RoomCalendar("ftp://example.org/room.ics", BERLIN, HOURS)


# -- what one calendar may cost ----------------------------------------------------------


SIXTY = ",".join(map(str, range(60)))


def _series(rule: str, start: str, tmp_path: Path) -> RoomCalendar:
    path = tmp_path / "series.ics"
    path.write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:s@x\r\n"
        f"DTSTAMP:20260101T000000Z\r\nDTSTART:{start}\r\nDURATION:PT30M\r\nRRULE:{rule}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    return RoomCalendar(path, BERLIN, HOURS, max_occurrences=20_000)


@pytest.mark.parametrize(
    ("rule", "start"),
    [
        ("FREQ=SECONDLY", "20260501T090000Z"),  # 4 million in the window
        ("FREQ=MINUTELY", "20260420T090000Z"),
        ("FREQ=DAILY;BYHOUR=9;BYMINUTE=" + SIXTY + ";BYSECOND=" + SIXTY, "20260401T0Z"),
        ("FREQ=SECONDLY;COUNT=100000000", "20100101T000000Z"),  # iterations from 2010
    ],
)
def test_a_series_that_would_expand_without_bound_is_refused_from_its_rule(
    rule: str, start: str, tmp_path: Path
) -> None:
    cal = _series("FREQ=WEEKLY", "20260105T090000Z", tmp_path)
    assert cal.load(now=at(5, 1)), cal.last_error  # good data first
    bad = _series(rule, start.replace("T0Z", "T000000Z"), tmp_path)
    bad._snapshot, bad.loaded_at = cal._snapshot, cal.loaded_at
    began = datetime.now(UTC)
    assert not bad.load(now=at(5, 1, 0, 5))
    assert datetime.now(UTC) - began < timedelta(seconds=2), "refused before expanding"
    assert bad.refused
    assert str(bad.last_error).startswith("refused: ")
    assert bad.status(at(5, 4, 11, 10)).booked_now, "the last good data stays"


@pytest.mark.parametrize(
    ("rule", "start"),
    [
        ("FREQ=WEEKLY", "20150105T090000Z"),  # eleven years of a weekly class
        ("FREQ=HOURLY", "20250101T000000Z"),
        ("FREQ=MINUTELY;COUNT=500", "20260430T090000Z"),
        ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=8,10,12,14,16", "20240101T000000Z"),
    ],
)
def test_ordinary_series_stay_within_the_budget(rule: str, start: str, tmp_path: Path) -> None:
    cal = _series(rule, start, tmp_path)
    assert cal.load(now=at(5, 1)), cal.last_error
    assert not cal.refused


def test_data_older_than_stale_after_is_not_known(server: _Server) -> None:
    url = f"http://127.0.0.1:{server.port}/lr.ics"
    cal = RoomCalendar(url, BERLIN, HOURS, stale_after=timedelta(hours=1))
    assert cal.load(now=at(5, 4, 8))
    assert cal.status(at(5, 4, 8, 59)).bookings_known
    stale = cal.status(at(5, 4, 11))
    assert not stale.bookings_known
    assert stale.booked_now, "the last good data still answers; the display hides its times"


def test_a_dripping_host_is_cut_at_the_deadline() -> None:
    """urllib's timeout is per read: a byte every 0.5 s passed a 10 s timeout for ever."""
    stop = threading.Event()

    class Drip(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            with contextlib.suppress(OSError):
                while not stop.wait(0.5):
                    self.wfile.write(b"B")
                    self.wfile.flush()

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        cal = RoomCalendar(f"http://127.0.0.1:{httpd.server_address[1]}/x.ics", BERLIN, HOURS)
        cal.timeout_s = 1.5
        began = datetime.now(UTC)
        assert not cal.load(now=at(5, 1))
        assert cal.last_error == "fetch failed: TimeoutError"
        assert datetime.now(UTC) - began < timedelta(seconds=10)  # deadline 1.5 s
    finally:
        stop.set()
        httpd.shutdown()
        httpd.server_close()
