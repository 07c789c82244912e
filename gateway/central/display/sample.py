"""A sample of sites and rooms for the display, with a day of bookings: what ``learnroom
demo`` shows, and what a site can copy from.

Named sites and rooms (umlauts included) of both kinds: open learning spaces, shown by their
seats, and bookable group rooms with an ICS calendar written for the simulated day, one of
whose bookings is a no-show (the demo sends nobody to that room until it is over). The
calendars are real files read by the real calendar loader, so the demo exercises what a site
runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.central.config import DisplayRoom

__all__ = ["SITES", "DemoRoom", "demo_calendar", "demo_rooms", "display_rooms"]

#: every demo room is in Germany, as the UBA thresholds are
DEMO_TZ = ZoneInfo("Europe/Berlin")

SITES = {
    "stadtbuecherei-mitte": "Stadtbücherei Mitte",
    "gesamtschule-nord": "Gesamtschule Nord",
    "stadtteilbibliothek-ost": "Stadtteilbibliothek Ost",
}
#: The first rooms of each site: German and English name.
ROOM_NAMES = {
    "stadtbuecherei-mitte": [
        ("Offener Lernbereich", "Open study area"),
        ("Gruppenraum Möwe", "Group room Seagull"),
        ("Lernstudio Süd", "Study studio south"),
    ],
    "gesamtschule-nord": [
        ("Selbstlernzentrum", "Self-study centre"),
        ("Übungsraum 204", "Practice room 204"),
        ("Lesesaal", "Reading room"),
    ],
    "stadtteilbibliothek-ost": [("Lernwerkstatt", "Learning workshop")],
}
#: Every demo room's hours on the display (the simulated rooms open and close with them).
DEMO_HOURS = {day: ["08:00-20:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
#: Bookings of a bookable room (local times); the first bookable room's first booking is
#: the no-show: its simulated people arrive only from after it (``gateway.demo``).
BOOKINGS = [(time(10, 0), time(11, 30)), (time(13, 0), time(14, 0)), (time(16, 0), time(17, 30))]
NO_SHOW = (time(8, 0), time(9, 0))


@dataclass(frozen=True)
class DemoRoom:
    """A simulated room as the display knows it: even numbers are bookable group rooms."""

    site: str
    room: str
    name: str
    name_en: str
    bookable: bool
    no_show: bool = False


def demo_rooms(rooms: int, sites: int) -> list[DemoRoom]:
    """``rooms`` spread over the first ``sites``; room 1, 3, ... open, 2, 4, ... bookable."""
    slugs = list(SITES)[: max(1, min(sites, len(SITES)))]
    out: list[DemoRoom] = []
    for i in range(rooms):
        site, n = slugs[i % len(slugs)], i // len(slugs) + 1
        names = ROOM_NAMES[site]
        name, name_en = names[n - 1] if n <= len(names) else (f"Lernraum {n}", f"Study room {n}")
        bookable = n % 2 == 0
        no_show = bookable and not any(r.bookable for r in out)
        out.append(DemoRoom(site, f"lernraum-{n}", name, name_en, bookable, no_show))
    return out


def demo_calendar(room: DemoRoom, day: date) -> str:
    """The room's bookings on the simulated ``day`` as ICS (times in UTC; titles the
    display never shows)."""
    times = ([NO_SHOW] if room.no_show else []) + BOOKINGS
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//learnroom//demo//DE"]
    for n, (start, end) in enumerate(times):
        s, e = (datetime.combine(day, t, DEMO_TZ).astimezone(UTC) for t in (start, end))
        lines += [
            "BEGIN:VEVENT",
            f"UID:demo-{room.site}-{room.room}-{n}@learnroom.invalid",
            f"DTSTAMP:{s:%Y%m%dT%H%M%SZ}",
            f"DTSTART:{s:%Y%m%dT%H%M%SZ}",
            f"DTEND:{e:%Y%m%dT%H%M%SZ}",
            "SUMMARY:Lerngruppe",
            "END:VEVENT",
        ]
    return "\r\n".join([*lines, "END:VCALENDAR", ""])


def display_rooms(rooms: list[DemoRoom], day: date, workdir: Path) -> list[DisplayRoom]:
    """The display's list: names, kinds and a calendar file for each bookable room."""
    out = []
    for r in rooms:
        calendar = None
        if r.bookable:
            path = workdir / f"calendar-{r.site}--{r.room}.ics"
            path.write_text(demo_calendar(r, day), encoding="utf-8")
            calendar = str(path)
        out.append(
            DisplayRoom(
                site=r.site,
                room=r.room,
                name=r.name,
                name_en=r.name_en,
                calendar=calendar,
                kind="bookable" if r.bookable else "open",
            )
        )
    return out
