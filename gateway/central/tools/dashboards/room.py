"""Room detail: one room (or a few) in depth, over the day and the week: use, air, Wi-Fi,
lockers, and a ventilation report."""

# ruff: noqa: S608 - query text for Grafana, built from this package's constants, never input

from __future__ import annotations

from gateway import const
from gateway.central.tools.dashboards.dashboard import (
    OPEN_HOURS_VAR,
    ROOM_VAR,
    SITE_VAR,
    Dashboard,
)
from gateway.central.tools.dashboards.panels import (
    BAND_COLUMNS,
    BAND_NAMES,
    CHARGING,
    CO2_BANDS,
    CO2_CRIT,
    CO2_WARN,
    DNS_BANDS,
    GOOD,
    HUMIDITY_BANDS,
    INFO,
    LOSS_BANDS,
    PRESENT,
    ROLLUP,
    ROOM_UID,
    RSSI_BANDS,
    RULES,
    TEMPERATURE_BANDS,
    WARN,
    WHERE,
    Json,
    Panel,
    Target,
    band_lines,
    colored_cells,
    column,
    hidden,
    occupied_bands,
    table_options,
    thresholds,
    timeseries_options,
)


def room_dashboard() -> Dashboard:
    per_interval = 'GROUP BY time($__interval), "room" fill(null)'

    def air(
        title: str,
        description: str,
        field: str,
        name: str,
        unit: str,
        bands: Json,
        defaults: Json,
    ) -> Panel:
        """A room's environment reading over time, against its bands."""
        return Panel(
            "timeseries",
            title,
            description,
            [
                Target(
                    "A",
                    f'SELECT mean("{field}") AS "{name}" FROM "environment" '
                    f"WHERE {WHERE} {per_interval}",
                    (name,),
                    alias="$tag_room",
                )
            ],
            w=8,
            unit=unit,
            bands=bands,
            custom=band_lines(),
            defaults=defaults,
            color_mode="palette-classic",
            options=timeseries_options(),
        )

    return Dashboard(
        ROOM_UID,
        "Learning room: detail",
        "One room (or a few) in depth: use over the day and the week, air, Wi-Fi, lockers.",
        [
            Panel(
                "timeseries",
                "People in the room",
                "How many people were in the room over the chosen time (the most at any "
                "moment of each step).",
                [
                    Target(
                        "A",
                        f'SELECT max("people") AS "people" FROM "occupancy" '
                        f"WHERE {WHERE} {per_interval}",
                        ("people",),
                        alias="$tag_room",
                    )
                ],
                unit="none",
                custom=band_lines(20) | {"thresholdsStyle": {"mode": "off"}},
                defaults={"min": 0, "decimals": 0},
                color_mode="palette-classic",
                options=timeseries_options(),
            ),
            Panel(
                "timeseries",
                "People over the last week",
                "The most people in the room in each hour of the last seven days: shows "
                "which days and hours are busy.",
                [
                    Target(
                        "A",
                        f'SELECT max("people") AS "people" FROM "occupancy" '
                        f'WHERE {WHERE} GROUP BY time(1h), "room" fill(none)',
                        ("people",),
                        alias="$tag_room",
                    )
                ],
                unit="none",
                custom=band_lines(20) | {"drawStyle": "bars", "thresholdsStyle": {"mode": "off"}},
                defaults={"min": 0, "decimals": 0},
                color_mode="palette-classic",
                time_from="7d",
                options=timeseries_options(),
            ),
            air(
                "Air quality (CO2)",
                f"Carbon dioxide over time with the Umweltbundesamt bands: green below "
                f"{CO2_WARN:.0f} ppm (fine), orange up to {CO2_CRIT:.0f} ppm (air the room), "
                "red above (open the windows now). It rises with every person in a closed "
                "room and falls fast when a window opens.",
                "co2_ppm",
                "co2",
                "ppm",
                CO2_BANDS,
                {"min": 400},
            ),
            air(
                "Temperature",
                f"Room temperature. Green between {RULES.temperature.low:.0f} and "
                f"{RULES.temperature.high:.0f} degrees Celsius (comfortable for quiet "
                "work); blue is too cold, red too warm.",
                "temperature_c",
                "temperature",
                "celsius",
                TEMPERATURE_BANDS,
                {"decimals": 1},
            ),
            air(
                "Humidity",
                f"Relative humidity of the air. Green between {RULES.humidity.low:.0f} % "
                f"and {RULES.humidity.high:.0f} %; drier air irritates eyes and throat, "
                "more humid air lets mould grow.",
                "humidity_pct",
                "humidity",
                "percent",
                HUMIDITY_BANDS,
                {"min": 0, "max": 100},
            ),
            Panel(
                "timeseries",
                "Wi-Fi signal",
                f"Signal strength of the public Wi-Fi as the room's gateway receives it. "
                f"Below {const.WIFI_RSSI_DEGRADED_DBM:.0f} dBm (red band) visitors notice "
                "slow or dropping connections.",
                [
                    Target(
                        "A",
                        f'SELECT mean("rssi_dbm") AS "signal" FROM "wifi" '
                        f"WHERE {WHERE} {per_interval}",
                        ("signal",),
                        alias="$tag_room",
                    )
                ],
                unit="dBm",
                bands=RSSI_BANDS,
                custom=band_lines(0),
                defaults={"min": -100, "max": -30},
                color_mode="palette-classic",
                options=timeseries_options(),
            ),
            Panel(
                "timeseries",
                "Wi-Fi loss and name lookups",
                f"Share of test packets lost (left axis, bad above "
                f"{const.WIFI_LOSS_DEGRADED_PCT:.0f} %) and how long a web address takes to "
                f"look up (right axis, bad above {const.WIFI_DNS_DEGRADED_MS:.0f} ms). Both "
                "high: the Wi-Fi feels broken.",
                [
                    Target(
                        "A",
                        f'SELECT max("loss_pct") AS "loss" FROM "wifi" '
                        f"WHERE {WHERE} {per_interval}",
                        ("loss",),
                        alias="$tag_room loss",
                    ),
                    Target(
                        "B",
                        f'SELECT max("dns_ms") AS "dns" FROM "wifi" WHERE {WHERE} {per_interval}',
                        ("dns",),
                        alias="$tag_room lookup",
                    ),
                ],
                unit="percent",
                bands=LOSS_BANDS,
                custom=band_lines(0) | {"thresholdsStyle": {"mode": "off"}},
                color_mode="palette-classic",
                overrides=[
                    {
                        "matcher": {"id": "byRegexp", "options": ".* lookup"},
                        "properties": [
                            {"id": "unit", "value": "ms"},
                            {"id": "custom.axisPlacement", "value": "right"},
                            {"id": "thresholds", "value": DNS_BANDS},
                        ],
                    }
                ],
                options=timeseries_options(),
            ),
            Panel(
                "table",
                "Locker slots now",
                "Every slot of the room's lockers: is the device in it, and is it charging? "
                "A device in its slot that is not charging needs its cable checked.",
                [
                    Target(
                        "A",
                        'SELECT last("present") AS "present", last("charging") AS "charging" '
                        f'FROM "locker_slot" WHERE {WHERE} '
                        'GROUP BY "site", "room", "locker", "slot"',
                        ("room", "locker", "slot", "present", "charging"),
                        fmt="table",
                    )
                ],
                custom=colored_cells(),
                overrides=[
                    column("present", mappings=PRESENT, displayName="Device"),
                    column("charging", mappings=CHARGING, displayName="Power"),
                ],
                transformations=[hidden("Time", "site")],
                options=table_options("room"),
            ),
            Panel(
                "timeseries",
                "Locker events",
                "What happened at the lockers, per hour: devices taken out (checkout) and "
                "brought back (return), doors opened, badges refused. Never who did it.",
                [
                    Target(
                        "A",
                        f'SELECT sum("count") AS "events" FROM "locker_event" '
                        f'WHERE {WHERE} GROUP BY time(1h), "room", "type" fill(none)',
                        ("events",),
                        alias="$tag_room $tag_type",
                    )
                ],
                unit="none",
                custom=band_lines(80) | {"drawStyle": "bars", "stacking": {"mode": "normal"}},
                defaults={"min": 0, "decimals": 0},
                color_mode="palette-classic",
                options=timeseries_options(),
            ),
            Panel(
                "timeseries",
                "Utilisation",
                "Share of the opening hours (variable 'Opening hours a day') in which "
                "somebody was in the room, day by day, in steps of 10 minutes. 100 %: in use "
                "all day.",
                [
                    Target(
                        "A",
                        'SELECT count("people") * 10 / ($open_hours * 60) * 100 AS "used" '
                        'FROM (SELECT max("people") AS "people" FROM "occupancy" '
                        f'WHERE {WHERE} GROUP BY time(10m), "room" fill(none)) '
                        'WHERE "people" > 0 AND $timeFilter GROUP BY time(1d), "room" fill(none)',
                        ("used",),
                        alias="$tag_room",
                    )
                ],
                unit="percent",
                bands=thresholds((None, INFO), (50.0, GOOD), (90.0, WARN)),
                custom=band_lines(80) | {"drawStyle": "bars", "thresholdsStyle": {"mode": "off"}},
                defaults={"min": 0, "decimals": 0},
                color_mode="palette-classic",
                time_from="7d",
                options=timeseries_options(),
            ),
            Panel(
                "table",
                "Ventilation report",
                "Minutes the room was in use, and of those, minutes in each air quality "
                "band, in the chosen time. Each CO2 reading carries whether the room was "
                "occupied when it was taken, so an empty room's stale air at night is no "
                "finding: many 'air the room' or 'open the windows' minutes mean the room "
                "needs airing more often or a ventilation check. From the 5-minute rollup: "
                "the newest 5 to 10 minutes are not in it yet.",
                [
                    Target(
                        "A",
                        f'SELECT sum("occupied_min") AS "in use" FROM {ROLLUP}."occupancy" '
                        f'WHERE {WHERE} GROUP BY "room"',
                        ("room", "in use"),
                        fmt="table",
                    ),
                    Target("B", occupied_bands('"room"'), ("room", *BAND_NAMES), fmt="table"),
                ],
                w=24,
                unit="m",
                defaults={"noValue": "0"},
                overrides=BAND_COLUMNS,
                custom={"cellOptions": {"type": "color-text"}},
                transformations=[{"id": "merge", "options": {}}, hidden("Time")],
                options=table_options("room"),
            ),
        ],
        [SITE_VAR, ROOM_VAR, OPEN_HOURS_VAR],
        time_from="now-24h",
    )
