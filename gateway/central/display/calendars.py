"""Room booking calendars: when a room is open, booked or free, from an ICS file or URL.

The display turns this into "free until 14:00" and "next free at 15:30". Only *times* leave
this module, and only times are kept: a calendar's titles, descriptions, organisers, attendees
and locations are read by the parser and dropped in :meth:`RoomCalendar.load` (DESIGN.md
"Privacy": public displays show "booked", never who or what). For the same reason error texts
never quote the calendar and logs never show a URL's path (Google's private ICS addresses carry
their secret token there).

``load()`` expands the recurring series (RRULE, RDATE, EXDATE, moved or cancelled occurrences
by RECURRENCE-ID) once, for a window around its ``now``, into merged intervals; the queries then
only search that sorted list, so a display can ask for every room on every update. ``load()``
blocks (file or HTTP); from asyncio call ``await cal.aload()``, which runs it in a thread. The
new data replaces the old in one assignment, so queries from the event loop need no lock.

What one calendar may cost is bounded, so a careless or hostile one cannot hurt other rooms:
a fetch has a deadline for the whole answer (``fetch.py``: a host dripping a byte every 2 s is
cut off), and expansion a budget of occurrences in the window. A series that would exceed it
(``RRULE:FREQ=SECONDLY`` without end: millions in the window, and as many iterations from its
start) is refused from its rule *before* it is expanded, and the whole load with it: a
calendar read in part would show a booked room as free. Data older than ``stale_after`` no
longer counts as known (``bookings_known``): the room says its bookings cannot be read.

Returned datetimes are aware and in the room's zone, ready to format as local times. Two of
them with the same ``ZoneInfo`` subtract as wall-clock times (Python's rule), which is an hour
off across a daylight-saving change: convert to UTC before taking durations.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import http.client
import logging
import math
import urllib.error
import urllib.request
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events  # type: ignore[import-untyped]  # no py.typed (3.8.2)

from gateway import __version__
from gateway.central.display.fetch import fetch
from gateway.central.hours import Interval, OpeningHours, Span, merge
from gateway.errors import LearnroomError

__all__ = [
    "Booking",
    "CalendarRefusedError",
    "OpeningHours",
    "RoomAvailability",
    "RoomCalendar",
    "Slot",
    "Span",
]

_LOGGER = logging.getLogger(__name__)

#: How far ``status`` looks for the next free time (the display shows "next free at ...").
LOOKAHEAD = timedelta(days=7)
#: Past bookings kept after a load, so today's and yesterday's slots stay answerable.
_KEEP_PAST = timedelta(days=7)

#: Length of one period of each RRULE frequency (months and years at their shortest): with
#: ``_CYCLE`` an upper estimate of how many times a series comes round.
_FREQ_S = {
    "SECONDLY": 1,
    "MINUTELY": 60,
    "HOURLY": 3_600,
    "DAILY": 86_400,
    "WEEKLY": 604_800,
    "MONTHLY": 28 * 86_400,
    "YEARLY": 365 * 86_400,
}
#: BY-parts that add occurrences within a longer period, with the span each of them divides.
_CYCLE = {
    "BYSECOND": 60,
    "BYMINUTE": 3_600,
    "BYHOUR": 86_400,
    "BYDAY": 604_800,
    "BYMONTHDAY": 28 * 86_400,
    "BYYEARDAY": 365 * 86_400,
    "BYWEEKNO": 365 * 86_400,
    "BYMONTH": 365 * 86_400,
}
#: dateutil walks a series from its first occurrence: iterations allowed per occurrence allowed.
_ITERATIONS_PER_OCCURRENCE = 10


class CalendarRefusedError(LearnroomError, ValueError):
    """A calendar that would cost more than its budget to expand: refused, never expanded."""


#: What a broken file, server or calendar raises on the way in. Library bugs on odd input
#: surface as the other builtins; all of them mean "keep the last good data".
_LOAD_ERRORS: tuple[type[Exception], ...] = (
    OSError,  # file, socket, timeout, urllib's URLError and HTTPError
    http.client.HTTPException,  # IncompleteRead and friends
    ValueError,  # icalendar's and recurring_ical_events' errors, bad UTF-8
    TypeError,
    KeyError,
    AttributeError,
    IndexError,
    OverflowError,
)


class Booking(NamedTuple):
    """Booked from ``start`` to ``end`` (merged with touching bookings): times only."""

    start: datetime
    end: datetime


class Slot(NamedTuple):
    """Open and not booked from ``start`` to ``end``."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class RoomAvailability:
    """A room at one instant, as the display shows it (``display.live.Availability``).

    ``free_until`` is set only when the room is free now: the next booking or closing time,
    ``None`` when it stays free for the whole look-ahead. ``next_free_at`` is set only when the
    room is booked or closed now, ``None`` when nothing is free in the look-ahead (7 days).
    ``bookings_known`` is False before the first good load or when the loaded window does not
    cover the look-ahead: then the answer comes from opening hours alone.
    """

    open_now: bool
    booked_now: bool
    current_booking_start: datetime | None
    current_booking_end: datetime | None
    free_until: datetime | None
    next_free_at: datetime | None
    bookings_known: bool
    #: The local day's opening periods and its free slots (open, not booked): the
    #: bookable room's timeline. Empty when closed all day.
    open_today: tuple[Slot, ...] = ()
    free_today: tuple[Slot, ...] = ()


def _subtract(base: list[Interval], cuts: list[Interval]) -> list[Interval]:
    """``base`` minus ``cuts``; both sorted and merged."""
    out: list[Interval] = []
    for s, e in base:
        cur = s
        for cs, ce in cuts:
            if ce <= cur or cs >= e:
                continue
            if cs > cur:
                out.append((cur, cs))
            cur = max(cur, ce)
            if cur >= e:
                break
        if cur < e:
            out.append((cur, e))
    return out


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime (naive local times are ambiguous)")
    return value.astimezone(UTC)


def _redact(url: str) -> str:
    """Scheme and host only: a calendar URL's path and query may be its password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """Merged UTC booking intervals, valid for ``[start, end)``: times only, by design."""

    starts: tuple[datetime, ...]
    ends: tuple[datetime, ...]
    start: datetime
    end: datetime


class RoomCalendar:
    """One room's booking calendar with its opening hours.

    ``source`` is an ICS file or an ``http(s)://`` (or ``webcal://``) URL; user and password in
    the URL become HTTP Basic auth (Nextcloud's private export links). ``tz`` places floating
    times and all-day events. The constructor does no I/O; call :meth:`load` (or
    :meth:`aload`) at start and every few minutes. ``load`` never raises for a bad file, URL
    or calendar: it keeps the last good data and sets ``last_error``.
    """

    def __init__(
        self,
        source: str | Path,
        tz: ZoneInfo,
        hours: OpeningHours,
        *,
        timeout_s: float = 10.0,
        horizon: timedelta = timedelta(days=42),
        max_bytes: int = 10_000_000,
        max_occurrences: int = 20_000,
        stale_after: timedelta | None = None,
    ) -> None:
        self.tz = tz
        self.hours = hours
        self.timeout_s = timeout_s
        self.horizon = horizon
        self.max_bytes = max_bytes
        self.max_occurrences = max_occurrences
        #: Data loaded longer ago than this is no longer trusted (``bookings_known`` False).
        self.stale_after = stale_after
        #: True when the last ``load`` refused the calendar for its cost.
        self.refused = False
        #: When the data now in use was loaded (``now`` of the last good ``load``).
        self.loaded_at: datetime | None = None
        #: Why the last ``load`` failed (never quoting the calendar); None after a good one.
        self.last_error: str | None = None
        self._snapshot: _Snapshot | None = None
        #: (day, snapshot, opening periods, free slots) of the last day asked about
        self._day_cache: tuple[date, _Snapshot | None, tuple[Slot, ...], tuple[Slot, ...]] | None
        self._day_cache = None
        self._failing = False  # log a change of state once, not every refresh
        self._path: Path | None = None
        self._url: str | None = None
        self._auth: str | None = None
        if isinstance(source, str) and "://" in source:
            parts = urlsplit(source)
            scheme = parts.scheme.lower()
            if scheme == "webcal":
                scheme = "https"
            if scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(
                    f"calendar source {_redact(source)!r}: use an http(s):// or webcal:// URL, "
                    "or a file path"
                )
            if parts.username is not None:
                pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
                self._auth = "Basic " + base64.b64encode(pair.encode()).decode()
            netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
            if ":" in parts.hostname:  # IPv6 literal
                netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
            self._url = urlunsplit((scheme, netloc, parts.path, parts.query, ""))
        else:
            self._path = Path(source)

    @property
    def source(self) -> str:
        """Where the calendar comes from, safe to log and show (no URL path or password)."""
        return _redact(self._url) if self._url else str(self._path)

    def __repr__(self) -> str:
        return f"RoomCalendar({self.source!r}, loaded_at={self.loaded_at!r})"

    # -- loading -------------------------------------------------------------------------

    def load(self, now: datetime | None = None) -> bool:
        """Fetch, parse and expand the calendar around ``now`` (default: the real time).

        Returns True when new data is in use; on any failure returns False, keeps the last
        good data and records ``last_error``: a display loop must never die of a calendar.
        """
        now = datetime.now(UTC) if now is None else _aware(now, "now")
        step = "fetch"
        try:
            raw = self._read()
            step = "parse"
            snapshot = self._expand(raw, now)
        except _LOAD_ERRORS as exc:
            # The exception text may quote the calendar (icalendar repeats bad lines): name
            # only its kind, and for HTTP its status; our own refusals quote nothing of it.
            self.refused = isinstance(exc, CalendarRefusedError)
            detail = f"HTTP {exc.code}" if isinstance(exc, urllib.error.HTTPError) else ""
            if isinstance(exc, urllib.error.URLError) and not detail:
                detail = type(exc.reason).__name__
            self.last_error = f"{step} failed: {type(exc).__name__}" + (
                f" ({detail})" if detail else ""
            )
            if self.refused:
                self.last_error = f"refused: {exc}"
            log = _LOGGER.debug if self._failing else _LOGGER.warning
            log("calendar %s: %s; keeping the last good data", self.source, self.last_error)
            self._failing = True
            return False
        self._snapshot = snapshot
        self.loaded_at = now
        self.last_error = None
        self.refused = False
        if self._failing:
            _LOGGER.info("calendar %s: loaded again", self.source)
        self._failing = False
        return True

    async def aload(self, now: datetime | None = None, executor: Executor | None = None) -> bool:
        """:meth:`load` in a worker thread (of ``executor``, default asyncio's), so a slow
        server never blocks the event loop."""
        return await asyncio.get_running_loop().run_in_executor(executor, self.load, now)

    def _read(self) -> bytes:
        if self._path is not None:
            with self._path.open("rb") as f:
                data = f.read(self.max_bytes + 1)
        elif self._url is not None:
            headers = {"User-Agent": f"learnroom/{__version__}", "Accept": "text/calendar"}
            if self._auth:
                headers["Authorization"] = self._auth
            request = urllib.request.Request(self._url, headers=headers)  # noqa: S310 - http(s) only, checked in __init__
            data = fetch(request, deadline_s=self.timeout_s, max_bytes=self.max_bytes)
        else:
            raise AssertionError("neither a path nor a URL")  # __init__ sets one
        if len(data) > self.max_bytes:
            raise ValueError(f"calendar larger than {self.max_bytes} bytes")
        return data

    def _expand(self, raw: bytes, now: datetime) -> _Snapshot:
        """All bookings in ``[now - 7 days, now + horizon)`` as merged UTC intervals; the
        parsed calendar, with its titles and people, is dropped on return."""
        cal = icalendar.Calendar.from_ical(raw)
        if cal.name != "VCALENDAR":
            raise ValueError("not a VCALENDAR")
        start, end = now - _KEEP_PAST, now + self.horizon
        self._budget(cal, start, end)
        # Dates a day wider than the window: the library compares floating, zoned and
        # all-day times in its own way; we filter exactly below.
        query = recurring_ical_events.of(cal)
        events = query.between(start.date() - timedelta(days=1), end.date() + timedelta(days=2))
        if len(events) > self.max_occurrences:  # RDATE lists, or a rule we estimated low
            raise CalendarRefusedError(f"over {self.max_occurrences} occurrences in the window")
        found: list[Interval] = []
        for event in events:
            if str(event.get("STATUS", "")).upper() == "CANCELLED":
                continue
            if str(event.get("TRANSP", "")).upper() == "TRANSPARENT":
                continue  # "show as free" in Google, Outlook and Nextcloud
            s, e = self._utc(event.start), self._utc(event.end)
            if e > s and e > start and s < end:
                found.append((s, e))
        merged = merge(found)
        return _Snapshot(
            starts=tuple(s for s, _ in merged),
            ends=tuple(e for _, e in merged),
            start=start,
            end=end,
        )

    def _budget(self, cal: icalendar.Calendar, start: datetime, end: datetime) -> None:
        """Refuse, from the rules alone, a calendar whose series would come round more than
        the budget allows: in the window (memory), or from their start (dateutil's time)."""
        occurrences = iterations = 0
        window = (end - start).total_seconds() + 3 * 86_400  # the query's extra days
        for event in cal.walk("VEVENT"):
            rules = event.get("RRULE")
            first = event.get("DTSTART")
            if rules is None or first is None:
                continue
            begin = self._utc(first.dt)
            for rule in rules if isinstance(rules, list) else [rules]:
                per_s, count, until = _rate(rule)
                last = min(end, self._utc(until)) if until is not None else end
                total = max(0.0, (last - begin).total_seconds()) * per_s
                inside = min(window, max(0.0, (last - max(begin, start)).total_seconds()))
                iterations += int(min(total, count) if count else total)
                occurrences += int(min(inside * per_s, count) if count else inside * per_s)
        if occurrences > self.max_occurrences:
            raise CalendarRefusedError(f"series of over {self.max_occurrences} occurrences")
        if iterations > _ITERATIONS_PER_OCCURRENCE * self.max_occurrences:
            raise CalendarRefusedError("its series repeat too often since they began")

    def _utc(self, value: date | datetime) -> datetime:
        """All-day dates start at the room's local midnight; floating times are room-local."""
        if not isinstance(value, datetime):
            return datetime.combine(value, time(0), self.tz).astimezone(UTC)
        if value.tzinfo is None:
            return value.replace(tzinfo=self.tz).astimezone(UTC)
        return value.astimezone(UTC)

    # -- queries ---------------------------------------------------------------------------

    def _booked(self, start: datetime, end: datetime) -> list[Interval]:
        """Merged UTC bookings overlapping ``[start, end)``, not clipped."""
        snap = self._snapshot
        if snap is None:
            return []
        i = bisect.bisect_right(snap.ends, start)
        out = []
        while i < len(snap.starts) and snap.starts[i] < end:
            out.append((snap.starts[i], snap.ends[i]))
            i += 1
        return out

    def _local(self, value: datetime) -> datetime:
        return value.astimezone(self.tz)

    def bookings(self, start: datetime, end: datetime) -> list[Booking]:
        """Bookings overlapping ``[start, end)``, merged where they overlap or touch, whole
        (a booking from 09:00 asked about from 10:00 still starts at 09:00).

        Known only inside the window of the last load (``now - 7 days`` to ``now +
        horizon``); nothing is known before the first good load.
        """
        s, e = _aware(start, "start"), _aware(end, "end")
        return [Booking(self._local(a), self._local(b)) for a, b in self._booked(s, e)]

    def free_slots(self, day: date) -> list[Slot]:
        """Opening hours of the local ``day`` minus its bookings."""
        opens = merge(self.hours.day(day))
        if not opens:
            return []
        booked = self._booked(opens[0][0], opens[-1][1])
        return [Slot(self._local(a), self._local(b)) for a, b in _subtract(opens, booked)]

    def status(self, now: datetime) -> RoomAvailability:
        """Open, booked, free until, next free at: what the display shows at ``now``."""
        n = _aware(now, "now")
        limit = n + LOOKAHEAD
        opens = self.hours.intervals(n, limit)
        booked = self._booked(n, limit)
        open_now = any(s <= n < e for s, e in opens)
        current = next(((s, e) for s, e in booked if s <= n < e), None)
        clipped = [(max(s, n), e) for s, e in opens]
        free = [iv for iv in _subtract(clipped, booked) if iv[0] < limit]
        free_until = next_free_at = None
        if open_now and current is None:
            end = free[0][1]
            free_until = end if end <= limit else None
        elif free:
            next_free_at = free[0][0]
        snap = self._snapshot
        open_today, free_today = self._today(n.astimezone(self.tz).date())
        return RoomAvailability(
            open_now=open_now,
            booked_now=current is not None,
            current_booking_start=self._local(current[0]) if current else None,
            current_booking_end=self._local(current[1]) if current else None,
            free_until=self._local(free_until) if free_until else None,
            next_free_at=self._local(next_free_at) if next_free_at else None,
            bookings_known=snap is not None
            and snap.start <= n
            and limit <= snap.end
            and (self.stale_after is None or n - self.stale_after <= _fresh(self.loaded_at)),
            open_today=open_today,
            free_today=free_today,
        )

    def _today(self, day: date) -> tuple[tuple[Slot, ...], tuple[Slot, ...]]:
        """The day's opening periods and free slots, worked out once per day and load: the
        display asks for every room at every change."""
        cached, snap = self._day_cache, self._snapshot  # keyed before a load may swap it
        if cached is None or cached[0] != day or cached[1] is not snap:
            opens = merge(self.hours.day(day))
            local = tuple(Slot(self._local(a), self._local(b)) for a, b in opens)
            cached = self._day_cache = (day, snap, local, tuple(self.free_slots(day)))
        return cached[2], cached[3]


def _fresh(loaded_at: datetime | None) -> datetime:
    return datetime.min.replace(tzinfo=UTC) if loaded_at is None else loaded_at


def _rate(rule: icalendar.prop.vRecur) -> tuple[float, int, date | datetime | None]:
    """An upper estimate of one RRULE's occurrences per second, its COUNT (0: none) and
    UNTIL: a period of its FREQ (and INTERVAL) times what its finer BY-parts add to one."""

    def first(key: str) -> object:
        values = rule.get(key) or [None]
        return values[0]

    period = _FREQ_S.get(str(first("FREQ")).upper())
    if period is None:
        raise ValueError("RRULE without a known FREQ")
    interval = first("INTERVAL")
    period *= max(1, int(interval)) if isinstance(interval, int) else 1
    per_period = 1
    for part, cycle in _CYCLE.items():
        values = rule.get(part)
        if values and cycle <= period:  # finer than FREQ: each value is one more per period
            # ... and a weekday comes round in every week of a month or year
            per_period *= len(values) * (math.ceil(period / cycle) if part == "BYDAY" else 1)
    count = first("COUNT")
    until = first("UNTIL")
    return (
        per_period / period,
        count if isinstance(count, int) and count > 0 else 0,
        until if isinstance(until, date) else None,
    )
