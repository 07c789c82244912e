"""Room availability, for room coordinators: every room of the chosen sites at a glance."""

# ruff: noqa: S608 - query text for Grafana, built from this package's constants, never input

from __future__ import annotations

from gateway.central.tools.dashboards.dashboard import (
    ROOM_VAR,
    SITE_VAR,
    Dashboard,
)
from gateway.central.tools.dashboards.panels import (
    BAD,
    BAND_COLUMNS,
    BAND_NAMES,
    CO2_BANDS,
    CO2_CRIT,
    CO2_WARN,
    GOOD,
    OCCUPIED,
    ROLLUP,
    ROOMS_UID,
    ROW_LINK,
    SERIES_LINK,
    WARN,
    WHERE,
    Panel,
    Target,
    column,
    hidden,
    occupied_bands,
    stat,
    table_options,
    thresholds,
)


def rooms_dashboard() -> Dashboard:
    by_room = 'GROUP BY "site", "room"'
    return Dashboard(
        ROOMS_UID,
        "Learning rooms: availability",
        "For room coordinators: every room of the chosen sites at a glance.",
        [
            Panel(
                "stat",
                "Free or occupied",
                "Green: nobody is in the room. Orange: people are in it. A room counts as "
                "free only after nobody has been seen for the hold time (10 minutes), so a "
                "short absence does not make it look free. Click a room for its details.",
                [
                    Target(
                        "A",
                        f'SELECT last("occupied") AS "occupied" FROM "occupancy" '
                        f"WHERE {WHERE} {by_room}",
                        ("occupied",),
                        alias="$tag_room",
                    )
                ],
                w=24,
                h=5,
                mappings=OCCUPIED,
                links=SERIES_LINK,
                options=stat(),
            ),
            Panel(
                "table",
                "People, capacity and free seats",
                "The newest count of each room: people in the room, how many the room is "
                "made for, and seats nobody sits on. Empty means the room has no sensor "
                "for it.",
                [
                    Target(
                        "A",
                        f'SELECT last("people") AS "people", last("capacity") AS "capacity", '
                        f'last("seats_free") AS "seats free", last("seats_total") AS "seats" '
                        f'FROM "occupancy" WHERE {WHERE} {by_room}',
                        ("site", "room", "people", "capacity", "seats free"),
                        fmt="table",
                    )
                ],
                w=12,
                h=8,
                unit="none",
                custom={"align": "auto"},
                overrides=[column("room", links=ROW_LINK)],
                transformations=[hidden("Time")],
                options=table_options("room"),
            ),
            Panel(
                "bargauge",
                "How full each room is",
                "People in the room against its capacity. Orange from 80 %: few seats left; "
                "red at 100 %: the room is full.",
                [
                    Target(
                        "A",
                        f'SELECT last("people") / last("capacity") * 100 AS "full" '
                        f'FROM "occupancy" WHERE {WHERE} {by_room}',
                        ("full",),
                        alias="$tag_room",
                    )
                ],
                w=12,
                h=8,
                unit="percent",
                bands=thresholds((None, GOOD), (80.0, WARN), (100.0, BAD)),
                defaults={"min": 0, "max": 100},
                links=SERIES_LINK,
                options={
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "orientation": "horizontal",
                    "displayMode": "lcd",
                    "showUnfilled": True,
                    "valueMode": "color",
                    "namePlacement": "left",
                },
            ),
            Panel(
                "stat",
                "Devices ready to borrow",
                "Devices (tablets, laptops) in the room's lockers now. 0 means every "
                "device is lent out.",
                [
                    Target(
                        "A",
                        'SELECT count("present") AS "devices" FROM ('
                        'SELECT last("present") AS "present" FROM "locker_slot" '
                        f'WHERE {WHERE} GROUP BY "site", "room", "locker", "slot") '
                        f'WHERE "present" = true AND $timeFilter {by_room}',
                        ("devices",),
                        alias="$tag_room",
                    )
                ],
                w=8,
                h=6,
                unit="none",
                bands=thresholds((None, WARN), (1.0, GOOD)),
                defaults={"noValue": "0"},
                links=SERIES_LINK,
                options=stat(),
            ),
            Panel(
                "stat",
                "Air quality (CO2)",
                f"Carbon dioxide in the air now. Below {CO2_WARN:.0f} ppm is fine (green); "
                f"{CO2_WARN:.0f} to {CO2_CRIT:.0f} ppm: please air the room (orange); above "
                f"{CO2_CRIT:.0f} ppm: open the windows now (red). Guide values of the German "
                "Umweltbundesamt for classrooms.",
                [
                    Target(
                        "A",
                        f'SELECT last("co2_ppm") AS "co2" FROM "environment" '
                        f"WHERE {WHERE} {by_room}",
                        ("co2",),
                        alias="$tag_room",
                    )
                ],
                w=8,
                h=6,
                unit="ppm",
                bands=CO2_BANDS,
                links=SERIES_LINK,
                options=stat(),
            ),
            Panel(
                "table",
                "Last update",
                "When each room last reported its occupancy. If this is more than a few "
                "minutes ago, the numbers above are old: tell IT support.",
                [
                    Target(
                        "A",
                        f'SELECT last("people") AS "people" FROM "occupancy" '
                        f"WHERE {WHERE} {by_room}",
                        ("site", "room", "people"),
                        fmt="table",
                    )
                ],
                w=8,
                h=6,
                overrides=[
                    column("Time", unit="dateTimeFromNow", displayName="Last update"),
                    column("room", links=ROW_LINK),
                ],
                transformations=[hidden("people")],
                options=table_options("Last update"),
            ),
            Panel(
                "table",
                "This week: use and air while in use",
                "The last seven days per room: minutes in use, the most people at once, "
                "minutes in use in each air quality band (each CO2 reading carries whether "
                "the room was occupied, so an empty room's air is no finding), devices lent "
                "and minutes with poor Wi-Fi. From the 5-minute rollup; `learnroom report` "
                "prints the same figures day by day for a site.",
                [
                    Target(
                        "A",
                        'SELECT sum("occupied_min") AS "in use", max("people_max") AS "peak" '
                        f'FROM {ROLLUP}."occupancy" WHERE {WHERE} {by_room}',
                        ("site", "room", "in use", "peak"),
                        fmt="table",
                    ),
                    Target(
                        "B",
                        occupied_bands(by_room.removeprefix("GROUP BY ")),
                        ("site", "room", *BAND_NAMES),
                        fmt="table",
                    ),
                    Target(
                        "C",
                        f'SELECT sum("count") AS "devices lent" FROM {ROLLUP}."locker_event" '
                        f"WHERE {WHERE} AND \"type\" = 'checkout' {by_room}",
                        ("site", "room", "devices lent"),
                        fmt="table",
                    ),
                    Target(
                        "D",
                        f'SELECT sum("degraded_min") AS "poor Wi-Fi" FROM {ROLLUP}."wifi" '
                        f"WHERE {WHERE} {by_room}",
                        ("site", "room", "poor Wi-Fi"),
                        fmt="table",
                    ),
                ],
                w=24,
                h=8,
                unit="m",
                defaults={"noValue": "0"},
                overrides=[
                    *BAND_COLUMNS,
                    column("peak", unit="none", displayName="peak people"),
                    column("devices lent", unit="none"),
                    column("room", links=ROW_LINK),
                ],
                custom={"cellOptions": {"type": "color-text"}},
                transformations=[{"id": "merge", "options": {}}, hidden("Time")],
                options=table_options("room"),
                time_from="7d",
            ),
        ],
        [SITE_VAR, ROOM_VAR],
    )
