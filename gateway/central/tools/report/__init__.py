"""``learnroom report``: a site's week for its coordinators, as PDF or HTML.

``data`` reads the 5-minute rollup over InfluxQL (1.x, and 2.x/3.x through DBRP), ``text``
holds the German and English words and the summary a coordinator can forward, ``render``
draws the pages with matplotlib. The figures are those of the Availability dashboard's weekly
table, day by day: minutes in use in each UBA CO2 band (each reading carries the room's
occupied state), minutes in use, mean and peak people, seat use, loans and Wi-Fi.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.central.config import CentralConfig
from gateway.central.hours import OpeningHours
from gateway.central.tools.report.data import (
    DayFigures,
    InfluxQLReader,
    ReportError,
    SiteWeek,
    read_site_week,
    week_of,
)
from gateway.central.tools.report.text import Lang

__all__ = [
    "DayFigures",
    "InfluxQLReader",
    "ReportError",
    "SiteWeek",
    "make_report",
    "read_site_week",
    "week_of",
]


def make_report(
    config: CentralConfig,
    sites: Sequence[str],
    week: str,
    out: Path,
    *,
    lang: Lang = "de",
    timezone: str | None = None,
) -> list[SiteWeek]:
    """Read each site's week and write ``out`` (``.pdf`` or ``.html``); returns the figures.

    Names and opening hours come from the config's ``[display]`` section (the names residents
    know, the hours the display shows); days are local days of ``timezone`` (default: the
    display's zone).
    """
    from gateway.central.tools.report.render import render_html, render_pdf  # noqa: PLC0415 - matplotlib is slow to import

    if config.influx is None:
        raise ReportError("no InfluxDB configured; add [influx] or pass --influx URL")
    suffix = out.suffix.lower()
    if suffix not in (".pdf", ".html", ".htm"):
        raise ReportError(f"--out {out}: the report is written as .pdf or .html")
    year, number = week_of(week)
    display = config.display
    tz = ZoneInfo(timezone or display.timezone)
    english = lang == "en"
    names = {
        r.room: (r.name_en if english and r.name_en else r.name) or r.room for r in display.rooms
    }
    reader = InfluxQLReader(config.influx)
    weeks = []
    for site in sites:
        hours: dict[str, OpeningHours | None] = {
            r.room: r.hours or display.hours for r in display.rooms if r.site == site
        }
        weeks.append(read_site_week(reader, site, year, number, tz, hours))
    render = render_pdf if suffix == ".pdf" else render_html
    render(weeks, out, lang, names, dict(display.sites))
    return weeks
