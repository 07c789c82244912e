"""German and English for the resident display: words, never colour alone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from gateway.central.display.live import Air, RoomInfo

LANGS = ("de", "en")

TEXT: dict[str, dict[str, str]] = {
    "de": {
        "title": "Freie Lernräume",
        "subtitle": "Räume, Plätze und Geräte zum Ausleihen",
        "free": "Frei",
        "occupied": "Belegt",
        "booked": "Gebucht",
        "probably_free": "Wahrscheinlich frei",
        "probably_free_hint": "gebucht, aber niemand da",
        "bookings_unknown": "Buchungen gerade nicht abrufbar",
        "closed": "Geschlossen",
        "no_data": "Keine aktuellen Daten",
        "free_until": "frei bis {time}",
        "next_free": "wieder frei ab {time}",
        "free_until_day": "frei bis {day} {time}",
        "next_free_day": "wieder frei {day} ab {time}",
        "seats": "{free} von {total} Plätzen frei",
        "seats_free": "{n} Plätze frei",
        "seats_free_one": "1 Platz frei",
        "seats_of": "von {total}",
        "full": "Voll",
        "free_today": "Heute frei",
        "free_today_none": "Heute keine freien Zeiten mehr",
        "closed_today": "Heute geschlossen",
        "now": "jetzt",
        "until": "bis",
        "devices": "{n} von {total} Geräten ausleihbar",
        "no_devices": "keine Geräte ausleihbar",
        "people": "{n} Personen",
        "people_one": "1 Person",
        "people_none": "niemand",
        "people_few": "wenige Personen",
        "air": "Luft",
        "air_good": "gut",
        "air_ventilate": "lüften empfohlen",
        "air_critical": "schlecht, bitte lüften",
        "air_unknown": "unbekannt",
        "updated": "Stand {time}",
        "switch": "English",
        "rooms": "Räume",
        "summary": "{free} von {total} Räumen frei",
        "page": "Seite {n} von {total}",
        "announce": "{name}: {status}",
        "no_rooms": "Noch keine Räume gemeldet.",
    },
    "en": {
        "title": "Free learning rooms",
        "subtitle": "Rooms, seats and devices to borrow",
        "free": "Free",
        "occupied": "Occupied",
        "booked": "Booked",
        "probably_free": "Probably free",
        "probably_free_hint": "booked, but nobody came",
        "bookings_unknown": "bookings cannot be read just now",
        "closed": "Closed",
        "no_data": "No current data",
        "free_until": "free until {time}",
        "next_free": "next free at {time}",
        "free_until_day": "free until {day} {time}",
        "next_free_day": "next free {day} at {time}",
        "seats": "{free} of {total} seats free",
        "seats_free": "{n} seats free",
        "seats_free_one": "1 seat free",
        "seats_of": "of {total}",
        "full": "Full",
        "free_today": "Free today",
        "free_today_none": "No free times left today",
        "closed_today": "Closed today",
        "now": "now",
        "until": "to",
        "devices": "{n} of {total} devices to borrow",
        "no_devices": "no devices to borrow",
        "people": "{n} people",
        "people_one": "1 person",
        "people_none": "nobody",
        "people_few": "a few people",
        "air": "Air",
        "air_good": "good",
        "air_ventilate": "needs airing",
        "air_critical": "poor, please air the room",
        "air_unknown": "unknown",
        "updated": "as of {time}",
        "switch": "Deutsch",
        "rooms": "Rooms",
        "summary": "{free} of {total} rooms free",
        "page": "Page {n} of {total}",
        "announce": "{name}: {status}",
        "no_rooms": "No rooms have reported yet.",
    },
}

#: A symbol beside every status and air band, so no meaning rests on colour alone.
SYMBOLS = {
    "free": "✓",
    "occupied": "✗",
    "full": "✗",
    "booked": "◷",
    "probably_free": "?",
    "closed": "\u2013",  # en dash
    "no_data": "…",
    Air.GOOD: "✓",
    Air.VENTILATE: "!",
    Air.CRITICAL: "✗",
    Air.UNKNOWN: "\u2013",
}

_DAYS = {
    "de": ("Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}


def negotiate(accept_language: str | None, requested: str | None) -> str:
    """``?lang=`` wins; else the first of our languages in Accept-Language by weight."""
    if requested in LANGS:
        return requested
    best, best_q = "de", -1.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        lang = tag.strip().lower().split("-")[0]
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if lang in LANGS and q > best_q:
            best, best_q = lang, q
    return best


def look(info: RoomInfo) -> str:
    """The state a card shows (its CSS ``status-*`` and symbol).

    An open space leads with its seats: people in it do not make it "occupied" while a seat
    is free, and it is "full" when none is. Booked, closed and no data say so whatever the
    kind; an open space without seat sensors falls back to free and occupied.
    """
    if info.kind == "open" and info.status in ("free", "occupied") and info.seats_free is not None:
        return "free" if info.seats_free > 0 else "full"
    return info.status


class Words:
    """The texts of one language for one time zone."""

    def __init__(self, lang: str, tz: ZoneInfo) -> None:
        self.lang = lang
        self.t = TEXT[lang]
        self.tz = tz

    def time(self, when: datetime) -> str:
        return when.astimezone(self.tz).strftime("%H:%M")

    def end(self, when: datetime) -> str:
        """The end of a slot or of the day: midnight is the day's "24:00", not "00:00"."""
        local = when.astimezone(self.tz)
        return "24:00" if (local.hour, local.minute) == (0, 0) else local.strftime("%H:%M")

    def when(self, key: str, when: datetime, now: datetime) -> str:
        local, today = when.astimezone(self.tz), now.astimezone(self.tz)
        if local.date() == today.date():
            return self.t[key].format(time=self.time(when))
        day = _DAYS[self.lang][local.weekday()]
        return self.t[f"{key}_day"].format(day=day, time=self.time(when))

    def status(self, info: RoomInfo) -> str:
        return self.headline(info)[1]

    def headline(self, info: RoomInfo) -> tuple[str, str]:
        """What the card leads with: its look (:func:`look`) and its words."""
        shown = look(info)
        if shown == "full":
            return shown, self.t["full"]
        if shown == "free" and info.kind == "open" and info.seats_free is not None:
            n = info.seats_free
            return shown, self.t["seats_free_one"] if n == 1 else self.t["seats_free"].format(n=n)
        return shown, self.t[info.status]

    def people(self, info: RoomInfo) -> str | None:
        if info.people_few:
            return self.t["people_few"]
        if info.people is None:
            return None
        if info.people == 0:
            return self.t["people_none"]
        return self.t["people_one"] if info.people == 1 else self.t["people"].format(n=info.people)

    def air(self, info: RoomInfo) -> str:
        return f"{self.t['air']}: {self.t['air_' + info.air.value]}"

    def availability(self, info: RoomInfo, now: datetime) -> str | None:
        if info.status in ("free", "probably_free") and info.free_until is not None:
            return self.when("free_until", info.free_until, now)
        if info.status in ("occupied", "booked", "closed") and info.next_free_at is not None:
            return self.when("next_free", info.next_free_at, now)
        return None
