"""Opening hours: when a room is open, per weekday and on closed dates, in its own zone.

Read from the central config (``[display.rooms.*.hours]`` and per site), used by the display's
calendars and usable by any service that needs to know whether a room is open. It lives below
the services so that the config that carries it imports no service.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator

from gateway.config import TimeZoneName

__all__ = ["DAYS", "Interval", "OpeningHours", "Span", "merge"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")

Interval = tuple[datetime, datetime]


class Span(NamedTuple):
    """One opening period of a day, local times. ``closes == 00:00`` means midnight at the
    end of the day (written "24:00")."""

    opens: time
    closes: time


def _parse_span(day: str, value: object) -> Span:
    """``"08:00-20:00"`` (TOML) or a pair ``["08:00", "20:00"]`` (a JSON dump) to a Span."""
    if isinstance(value, Span):
        return value
    if isinstance(value, str):
        m = _SPAN_RE.match(value)
        if m is None:
            raise ValueError(
                f"{day}: {value!r} is not an opening period; write 'HH:MM-HH:MM', "
                "e.g. '08:00-20:00'"
            )
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        start, end = (h1, m1), (h2, m2)
    elif isinstance(value, Sequence) and len(value) == 2:
        start, end = (_parts(day, v) for v in value)
    else:
        raise ValueError(f"{day}: {value!r} is not an opening period; write 'HH:MM-HH:MM'")
    for h, mi in (start, end):
        if not (0 <= h <= 24 and 0 <= mi < 60) or (h == 24 and mi != 0):
            raise ValueError(f"{day}: {value!r} has a time outside 00:00-24:00")
    if start == (24, 0):
        raise ValueError(f"{day}: {value!r} opens at 24:00; use 00:00 of the next day")
    opens = time(*start)
    closes = time(0) if end == (24, 0) else time(*end)
    if closes != time(0) and closes <= opens:
        raise ValueError(
            f"{day}: {value!r} closes before it opens; past midnight, split it "
            f"({day} = ['{opens:%H:%M}-24:00'] and '00:00-{closes:%H:%M}' the next day)"
        )
    return Span(opens, closes)


def _parts(day: str, value: object) -> tuple[int, int]:
    if isinstance(value, time):
        return value.hour, value.minute
    m = re.match(r"^(\d{1,2}):(\d{2})(?::00)?$", str(value).strip())
    if m is None:
        raise ValueError(f"{day}: {value!r} is not a time; write 'HH:MM'")
    return int(m.group(1)), int(m.group(2))


class OpeningHours(BaseModel):
    """When a room is open, per weekday, in local time: ``{mon = ["08:00-20:00"],
    sat = ["10:00-14:00"], sun = [], closed = [2026-12-24]}``.

    A day left out is closed (so a typo cannot open a room on Sunday); ``closed`` lists
    holidays. Periods past midnight are split at "24:00", which joins the next day's "00:00".
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: TimeZoneName = "Europe/Berlin"
    mon: tuple[Span, ...] = ()
    tue: tuple[Span, ...] = ()
    wed: tuple[Span, ...] = ()
    thu: tuple[Span, ...] = ()
    fri: tuple[Span, ...] = ()
    sat: tuple[Span, ...] = ()
    sun: tuple[Span, ...] = ()
    closed: tuple[date, ...] = ()

    @classmethod
    def always_open(cls, timezone: str = "Europe/Berlin") -> OpeningHours:
        """For rooms without hours: bookings alone decide."""
        whole = (Span(time(0), time(0)),)
        return cls(timezone=timezone, **dict.fromkeys(DAYS, whole))

    @model_validator(mode="before")
    @classmethod
    def _known_days(cls, data: object) -> object:
        if isinstance(data, dict):
            known = {*DAYS, "closed", "timezone"}
            for key in data:
                if key not in known:
                    raise ValueError(
                        f"unknown key {key!r} in opening hours; days are "
                        f"{', '.join(DAYS)}, plus 'closed' (dates) and 'timezone'"
                    )
        return data

    @field_validator(*DAYS, mode="before")
    @classmethod
    def _spans(cls, value: object, info: ValidationInfo) -> tuple[Span, ...]:
        day = str(info.field_name)
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, Sequence):
            # pydantic reports ValueError with the field's location, a TypeError escapes it
            raise ValueError(  # noqa: TRY004
                f"{day}: expected a list like ['08:00-20:00'], got {value!r}"
            )
        spans = sorted((_parse_span(day, v) for v in items), key=lambda s: s.opens)
        for a, b in itertools.pairwise(spans):
            if a.closes == time(0) or b.opens < a.closes:
                raise ValueError(
                    f"{day}: periods {a.opens:%H:%M}-{a.closes:%H:%M} and "
                    f"{b.opens:%H:%M}-{b.closes:%H:%M} overlap; merge them"
                )
        return tuple(spans)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def day(self, day: date) -> list[Interval]:
        """The open periods of one local date, as UTC intervals (none on a closed date)."""
        if day in self.closed:
            return []
        tz = self.tz
        spans: tuple[Span, ...] = getattr(self, DAYS[day.weekday()])
        out = []
        for s in spans:
            end_day = day + timedelta(days=1) if s.closes == time(0) else day
            out.append(
                (
                    datetime.combine(day, s.opens, tz).astimezone(UTC),
                    datetime.combine(end_day, s.closes, tz).astimezone(UTC),
                )
            )
        return out

    def intervals(self, start: datetime, end: datetime) -> list[Interval]:
        """Merged UTC open intervals that overlap ``[start, end)``, not clipped to it, so
        "24:00" and the next day's "00:00" form one interval."""
        tz = self.tz
        first = start.astimezone(tz).date() - timedelta(days=1)
        last = end.astimezone(tz).date() + timedelta(days=1)
        days = (first + timedelta(days=i) for i in range((last - first).days + 1))
        merged = merge(iv for d in days for iv in self.day(d))
        return [iv for iv in merged if iv[1] > start and iv[0] < end]


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, with overlapping and touching intervals joined."""
    out: list[Interval] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out
