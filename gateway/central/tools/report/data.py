"""A site's week as figures per room and day, read from the 5-minute rollup over InfluxQL.

Read-only GET ``/query``: InfluxDB 1.x (database, optional basic auth) and 2.x/3.x through
their InfluxQL endpoint and DBRP mapping (bucket as database, ``Authorization: Token``). The
rollup (``influx_setup``) keeps two years, so any past week is a few small queries, one per
measurement, grouped by local day and room (``tz()``): minutes are sums of the rollup's
per-window minutes (``influx_setup.DERIVED``), never recounted from raw points.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway.central.config import InfluxSection
from gateway.central.hours import OpeningHours
from gateway.central.tools.influx_setup import CO2_BAND_FIELDS, result_rows, rollup_rp
from gateway.errors import LearnroomError

__all__ = ["DayFigures", "InfluxQLReader", "ReportError", "SiteWeek", "read_site_week", "week_of"]

BANDS = tuple(CO2_BAND_FIELDS)  # occupied_min_fine, _ventilate, _critical


class ReportError(LearnroomError, RuntimeError):
    """The database could not be read, or the week or site is not what was meant."""


@dataclass
class DayFigures:
    """One room on one local day; None where the data holds nothing to say."""

    day: date
    open_min: int | None = None
    occupied_min: int = 0
    people_mean: float | None = None
    people_max: int | None = None
    #: share of the seats taken while the room was in use (0..1)
    seat_use: float | None = None
    lent: int = 0
    overdue: int = 0
    wifi_degraded_min: int = 0
    #: minutes in use per UBA band, in ``BANDS`` order
    bands: list[int] = field(default_factory=lambda: [0, 0, 0])


@dataclass
class SiteWeek:
    site: str
    year: int
    week: int
    days: list[date]
    tz: ZoneInfo
    rooms: dict[str, list[DayFigures]]

    def total(self, room: str, attr: str) -> int:
        return sum(getattr(d, attr) for d in self.rooms[room])

    def band_totals(self, room: str) -> list[int]:
        return [sum(d.bands[i] for d in self.rooms[room]) for i in range(len(BANDS))]


def week_of(text: str) -> tuple[int, int]:
    """``2026-W48`` -> (2026, 48); a week that does not exist is an error that says so."""
    try:
        year_text, week_text = text.upper().split("-W")
        year, week = int(year_text), int(week_text)
        date.fromisocalendar(year, week, 1)
    except ValueError as exc:
        raise ReportError(f"week {text!r}: write the ISO week as YYYY-Www, e.g. 2026-W48") from exc
    return year, week


class InfluxQLReader:
    """Read-only InfluxQL over HTTP for 1.x and 2.x/3.x; errors name the URL and the reason."""

    def __init__(self, influx: InfluxSection) -> None:
        self.url = influx.url.rstrip("/")
        self.db = influx.bucket if influx.version == 2 and influx.bucket else influx.db
        self.timeout_s = influx.timeout_s
        self.headers: dict[str, str] = {}
        if influx.version == 2:
            self.headers["Authorization"] = f"Token {influx.token or ''}"
        elif influx.username is not None:
            pair = f"{influx.username}:{influx.password or ''}".encode()
            self.headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"

    def rows(self, q: str) -> list[dict[str, Any]]:
        params = urllib.parse.urlencode({"q": q, "db": self.db, "epoch": "ms"})
        request = urllib.request.Request(f"{self.url}/query?{params}", headers=self.headers)  # noqa: S310 - the configured http(s) URL
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:  # noqa: S310
                payload = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            reason = exc.read().decode(errors="replace")[:300]
            raise ReportError(f"InfluxDB at {self.url} answered {exc.code}: {reason}") from exc
        except (OSError, ValueError) as exc:
            raise ReportError(f"cannot read InfluxDB at {self.url} ({exc})") from exc
        result: dict[str, Any] = (payload.get("results") or [{}])[0]
        if "error" in result or "error" in payload:
            raise ReportError(
                f"InfluxDB refused {q!r}: {result.get('error', payload.get('error'))}"
            )
        return result_rows(result)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def read_site_week(
    reader: InfluxQLReader,
    site: str,
    year: int,
    week: int,
    tz: ZoneInfo,
    hours: dict[str, OpeningHours | None] | None = None,
    rollup_interval: str = "5m",
) -> SiteWeek:
    """Every room of ``site`` that reported in the ISO week, day by day in ``tz``.

    ``hours`` (room -> opening hours, from the display config) gives opening minutes;
    without it they stay unknown.
    """
    first = date.fromisocalendar(year, week, 1)
    days = [first + timedelta(days=i) for i in range(7)]
    start = datetime.combine(first, datetime.min.time(), tz).astimezone(UTC)
    end = datetime.combine(first + timedelta(days=7), datetime.min.time(), tz).astimezone(UTC)
    rp = rollup_rp(rollup_interval)
    where = (
        f'"site" = {_quote(site)} AND time >= {int(start.timestamp())}s '
        f"AND time < {int(end.timestamp())}s"
    )
    tail = f'GROUP BY time(1d), "room" fill(none) tz({_quote(str(tz.key))})'

    def ask(
        select: str, measurement: str, extra: str = "", group: str = tail
    ) -> list[dict[str, Any]]:
        # every value is quoted by _quote, every name a constant of this package
        q = f'SELECT {select} FROM "{rp}"."{measurement}" WHERE {where}{extra} {group}'  # noqa: S608
        return reader.rows(q)

    rooms: dict[str, dict[date, DayFigures]] = {}

    def cell(row: dict[str, Any]) -> DayFigures:
        day = datetime.fromtimestamp(row["time"] / 1000, UTC).astimezone(tz).date()
        per_room = rooms.setdefault(str(row["room"]), {})
        return per_room.setdefault(day, DayFigures(day))

    for row in ask('sum("occupied_min") AS "m", max("people_max") AS "peak"', "occupancy"):
        fig = cell(row)
        fig.occupied_min = int(row["m"] or 0)
        fig.people_max = None if row["peak"] is None else int(row["peak"])
    in_use = ask(
        'mean("people") AS "people", mean("seats_free") AS "free", mean("seats_total") AS "seats"',
        "occupancy",
        ' AND "occupied_min" > 0',
    )
    for row in in_use:
        fig = cell(row)
        fig.people_mean = row["people"]
        if row["seats"]:
            fig.seat_use = 1.0 - float(row["free"] or 0.0) / float(row["seats"])
    sums = ", ".join(f'sum("{b}") AS "{b}"' for b in BANDS)
    for row in ask(sums, "environment"):
        cell(row).bands = [int(row[b] or 0) for b in BANDS]
    events = ask(
        'sum("count") AS "n"',
        "locker_event",
        " AND (\"type\" = 'checkout' OR \"type\" = 'overdue')",
        tail.replace('"room"', '"room", "type"'),
    )
    for row in events:
        fig = cell(row)
        if row["type"] == "checkout":
            fig.lent = int(row["n"] or 0)
        else:
            fig.overdue = int(row["n"] or 0)
    for row in ask('sum("degraded_min") AS "m"', "wifi"):
        cell(row).wifi_degraded_min = int(row["m"] or 0)

    out: dict[str, list[DayFigures]] = {}
    for room in sorted(rooms):
        figures = [rooms[room].get(d) or DayFigures(d) for d in days]
        room_hours = (hours or {}).get(room)
        if room_hours is not None:
            for fig in figures:
                fig.open_min = sum(
                    int((b - a).total_seconds()) // 60 for a, b in room_hours.day(fig.day)
                )
        out[room] = figures
    return SiteWeek(site, year, week, days, tz, out)
