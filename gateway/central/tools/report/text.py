"""The report's words in German and English, and the short text a coordinator forwards.

Kept apart from the layout so that a translation is one table, and so that the tests can
read back every label the PDF prints.
"""

from __future__ import annotations

from typing import Literal

from gateway import const
from gateway.central.tools.report.data import SiteWeek

Lang = Literal["de", "en"]

_FINE, _CRIT = const.CO2_FINE_BELOW_PPM, const.CO2_CRITICAL_ABOVE_PPM
DASH = "\N{EN DASH}"

WORDS: dict[Lang, dict[str, str]] = {
    "de": {
        "title": "Wochenbericht {site}, KW {week}/{year}",
        "period": "{first} bis {last}",
        "summary": "Zusammenfassung",
        "ventilation": "Lüftung: Minuten in Nutzung je CO2-Stufe (Umweltbundesamt)",
        "usage": "Nutzung je Raum und Tag",
        "room": "Raum",
        "day": "Tag",
        "in_use": "in Nutzung (min)",
        "fine": f"gut < {_FINE:.0f} ppm",
        "ventilate": f"lüften {_FINE:.0f}{DASH}{_CRIT:.0f}",
        "critical": f"kritisch > {_CRIT:.0f}",
        "share_fine": "Anteil gut",
        "open": "geöffnet",
        "occupied": "belegt",
        "people_mean": "Ø Pers.",
        "people_max": "max. Pers.",
        "seats": "Plätze",
        "lent": "verliehen",
        "overdue": "überfällig",
        "wifi": "WLAN schlecht",
        "plot_use": "Minuten in Nutzung je Tag",
        "plot_air": "Minuten in Nutzung je CO2-Stufe",
        "minutes": "Minuten",
        "no_data": "Für diese Woche liegen keine Daten vor.",
        "unknown": DASH,
        "footer": "Erstellt von learnroom aus dem 5-Minuten-Rollup; Minuten sind Minuten "
        "mit Messwert. Grenzwerte: Leitwerte des Umweltbundesamts für Klassenräume.",
        "room_line": "{room}: {hours} h in Nutzung an {days} Tagen, bis zu {peak} Personen; "
        "Luft gut in {fine} % der Nutzungszeit",
        "room_idle": "{room}: in dieser Woche nicht genutzt.",
        "air_bad": ", {ventilate} min zum Lüften und {critical} min kritisch (über "
        f"{_CRIT:.0f} ppm): bitte häufiger lüften.",
        "air_ok": ".",
        "lent_line": "Geräte verliehen: {lent}, davon überfällig gemeldet: {overdue}.",
        "wifi_line": "WLAN: {minutes} Minuten mit schlechter Verbindung.",
        "weekdays": "Mo Di Mi Do Fr Sa So",
    },
    "en": {
        "title": "Weekly report {site}, week {week}/{year}",
        "period": "{first} to {last}",
        "summary": "Summary",
        "ventilation": "Ventilation: minutes in use per CO2 band (Umweltbundesamt)",
        "usage": "Use per room and day",
        "room": "Room",
        "day": "Day",
        "in_use": "in use (min)",
        "fine": f"fine < {_FINE:.0f} ppm",
        "ventilate": f"ventilate {_FINE:.0f}{DASH}{_CRIT:.0f}",
        "critical": f"critical > {_CRIT:.0f}",
        "share_fine": "share fine",
        "open": "open",
        "occupied": "occupied",
        "people_mean": "mean ppl",
        "people_max": "peak ppl",
        "seats": "seats",
        "lent": "lent",
        "overdue": "overdue",
        "wifi": "poor Wi-Fi",
        "plot_use": "Minutes in use per day",
        "plot_air": "Minutes in use per CO2 band",
        "minutes": "minutes",
        "no_data": "No data for this week.",
        "unknown": DASH,
        "footer": "Made by learnroom from the 5-minute rollup; minutes are minutes with a "
        "reading. Bands: the Umweltbundesamt's guide values for classrooms.",
        "room_line": "{room}: {hours} h in use on {days} days, up to {peak} people; "
        "air fine for {fine} % of the time in use",
        "room_idle": "{room}: not used this week.",
        "air_bad": ", {ventilate} min to ventilate and {critical} min critical (above "
        f"{_CRIT:.0f} ppm): please air the room more often.",
        "air_ok": ".",
        "lent_line": "Devices lent: {lent}, reported overdue: {overdue}.",
        "wifi_line": "Wi-Fi: {minutes} minutes with a poor connection.",
        "weekdays": "Mon Tue Wed Thu Fri Sat Sun",
    },
}


def number(value: float, lang: Lang, decimals: int = 0) -> str:
    """A number as the language writes it (German: decimal comma)."""
    text = f"{value:,.{decimals}f}"
    if lang == "de":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


def summary(week: SiteWeek, lang: Lang, names: dict[str, str]) -> list[str]:
    """Short paragraphs a coordinator can forward: one line per room, then loans and Wi-Fi."""
    w = WORDS[lang]
    if not week.rooms:
        return [w["no_data"]]
    lines = []
    for room, days in week.rooms.items():
        name = names.get(room, room)
        used = week.total(room, "occupied_min")
        if used == 0:
            lines.append(w["room_idle"].format(room=name))
            continue
        fine, ventilate, critical = week.band_totals(room)
        measured = fine + ventilate + critical
        peaks = [d.people_max for d in days if d.people_max is not None]
        line = w["room_line"].format(
            room=name,
            hours=number(used / 60, lang, 1),
            days=sum(1 for d in days if d.occupied_min),
            peak=max(peaks, default=0),
            fine=number(100 * fine / measured, lang) if measured else w["unknown"],
        )
        bad = ventilate + critical
        line += w["air_bad"].format(ventilate=ventilate, critical=critical) if bad else w["air_ok"]
        lines.append(line)
    lent = sum(week.total(r, "lent") for r in week.rooms)
    overdue = sum(week.total(r, "overdue") for r in week.rooms)
    lines.append(w["lent_line"].format(lent=lent, overdue=overdue))
    wifi = sum(week.total(r, "wifi_degraded_min") for r in week.rooms)
    lines.append(w["wifi_line"].format(minutes=wifi))
    return lines
