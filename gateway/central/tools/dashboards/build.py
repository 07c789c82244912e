"""The four Grafana dashboards, generated.

Regenerate with ``python -m gateway.central.tools.dashboards grafana/dashboards``.

The JSON under ``grafana/dashboards/`` is what users import (and what Grafana's file provider
loads); it is written by this module and a test holds the committed files equal to its output.
Every query is InfluxQL against the provisioned data source ``learnroom-influxdb`` (DESIGN.md:
1.x answers it, 2.x and 3.x through DBRP mappings), on the default retention policy, with the
names of DESIGN.md's "InfluxDB schema" (``gateway/central/mapping.py``). The ingest's own health
is not in InfluxDB: its panels ask the optional Prometheus data source ``learnroom-prometheus``
for the ingest's ``/metrics`` (``gateway/central/ingest/service.py``).

Each InfluxQL target also carries, outside the JSON, the columns its panel reads
(``Dashboard.expects``), so the tests can run every query against a real database and check
that the panel would have something to show.
"""

# ruff: noqa: S608 - query text for Grafana, built from this module's constants, never input

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from gateway import const
from gateway.central.thresholds import Rules

Json = dict[str, Any]

#: The uids of the provisioned data sources (``grafana/provisioning/datasources``).
INFLUX_UID: Final = "learnroom-influxdb"
PROMETHEUS_UID: Final = "learnroom-prometheus"
ALERTMANAGER_UID: Final = "learnroom-alertmanager"
INFLUX: Final[Json] = {"type": "influxdb", "uid": INFLUX_UID}
PROMETHEUS: Final[Json] = {"type": "prometheus", "uid": PROMETHEUS_UID}

#: Dashboard uids; the room detail's is the alert service's default link target
#: (``AlertsSection.room_dashboard_uid``).
ROOMS_UID: Final = "learnroom-rooms"
ROOM_UID: Final = "learnroom-room"
IT_UID: Final = "learnroom-it"
DISPLAY_UID: Final = "learnroom-display"

#: Grafana 11's dashboard schema (compose.yaml runs grafana-oss 11.3).
SCHEMA_VERSION: Final = 39
GRID_COLUMNS: Final = 24

_RULES = Rules()
CO2_WARN: Final = const.CO2_FINE_BELOW_PPM
CO2_CRIT: Final = const.CO2_CRITICAL_ABOVE_PPM

# the colours Grafana names; kept few so that the meaning stays the same on every dashboard
GOOD, WARN, BAD, INFO, IDLE = "green", "orange", "red", "blue", "text"

# WHERE clauses: multi-value variables become a regex, as Grafana's InfluxDB source expects
SITE = '"site" =~ /^$site$/'
SITE_ROOM = f'{SITE} AND "room" =~ /^$room$/'
WHERE = f"{SITE_ROOM} AND $timeFilter"
WHERE_SITE = f"{SITE} AND $timeFilter"
ROOM_LINK = f"/d/{ROOM_UID}/room-detail"


@dataclass(frozen=True)
class Target:
    """One query of a panel; ``expects``: the columns (fields or tags) the panel reads."""

    ref: str
    query: str
    expects: tuple[str, ...] = ()
    fmt: Literal["time_series", "table"] = "time_series"
    alias: str | None = None
    prometheus: bool = False
    legend: str | None = None

    def json(self) -> Json:
        if self.prometheus:
            return {
                "datasource": PROMETHEUS,
                "refId": self.ref,
                "expr": self.query,
                "legendFormat": self.legend or "__auto",
                "range": True,
            }
        out: Json = {
            "datasource": INFLUX,
            "refId": self.ref,
            "rawQuery": True,
            "query": self.query,
            "resultFormat": self.fmt,
        }
        if self.alias:
            out["alias"] = self.alias
        return out


def thresholds(*steps: tuple[float | None, str]) -> Json:
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for value, color in steps],
    }


CO2_BANDS: Final = thresholds((None, GOOD), (CO2_WARN, WARN), (CO2_CRIT, BAD))
TEMPERATURE_BANDS: Final = thresholds(
    (None, INFO), (_RULES.temperature.low, GOOD), (_RULES.temperature.high, BAD)
)
HUMIDITY_BANDS: Final = thresholds(
    (None, WARN), (_RULES.humidity.low, GOOD), (_RULES.humidity.high, WARN)
)
RSSI_BANDS: Final = thresholds((None, BAD), (const.WIFI_RSSI_DEGRADED_DBM, GOOD))
LOSS_BANDS: Final = thresholds((None, GOOD), (const.WIFI_LOSS_DEGRADED_PCT, BAD))
DNS_BANDS: Final = thresholds((None, GOOD), (const.WIFI_DNS_DEGRADED_MS, BAD))
#: A Raspberry Pi throttles its CPU from 80 degC (firmware default ``temp_soft_limit`` 60-70).
CPU_TEMP_BANDS: Final = thresholds((None, GOOD), (70.0, WARN), (80.0, BAD))
PLAIN: Final = thresholds((None, INFO))


def bool_map(true: tuple[str, str], false: tuple[str, str]) -> list[Json]:
    """Value mappings for a boolean field: text and colour for true and for false."""
    return [
        {
            "type": "value",
            "options": {
                "true": {"text": true[0], "color": true[1], "index": 0},
                "false": {"text": false[0], "color": false[1], "index": 1},
            },
        }
    ]


OCCUPIED = bool_map(("Occupied", WARN), ("Free", GOOD))
ONLINE = bool_map(("Online", GOOD), ("Offline", BAD))
DOOR = bool_map(("Open", WARN), ("Closed", GOOD))
PRESENT = bool_map(("In the locker", GOOD), ("Lent out", INFO))
CHARGING = bool_map(("Charging", GOOD), ("Not charging", WARN))
FIRING = bool_map(("Firing", BAD), ("Resolved", GOOD))


def room_data_link(site: str, room: str) -> list[Json]:
    """A link from a room's value to its room detail, keeping the time range."""
    return [
        {
            "title": "Room detail",
            "url": f"{ROOM_LINK}?var-site={site}&var-room={room}&${{__url_time_range}}",
        }
    ]


SERIES_LINK = room_data_link("${__field.labels.site}", "${__field.labels.room}")
ROW_LINK = room_data_link("${__data.fields.site}", "${__data.fields.room}")


@dataclass
class Panel:
    """A panel before layout; ``w`` and ``h`` in grid units."""

    kind: str
    title: str
    description: str
    targets: Sequence[Target]
    w: int = 12
    h: int = 8
    unit: str | None = None
    bands: Json = field(default_factory=lambda: PLAIN)
    mappings: list[Json] = field(default_factory=list)
    options: Json = field(default_factory=dict)
    custom: Json = field(default_factory=dict)
    overrides: list[Json] = field(default_factory=list)
    transformations: list[Json] = field(default_factory=list)
    links: list[Json] = field(default_factory=list)
    extra: Json = field(default_factory=dict)
    defaults: Json = field(default_factory=dict)
    time_from: str | None = None
    color_mode: str = "thresholds"

    def json(self, pid: int, x: int, y: int) -> Json:
        defaults: Json = {
            "color": {"mode": self.color_mode},
            "thresholds": self.bands,
            "mappings": self.mappings,
            "links": self.links,
        }
        if self.unit:
            defaults["unit"] = self.unit
        if self.custom:
            defaults["custom"] = self.custom
        defaults |= self.defaults
        out: Json = {
            "id": pid,
            "type": self.kind,
            "title": self.title,
            "description": self.description,
            "datasource": PROMETHEUS if all(t.prometheus for t in self.targets) else INFLUX,
            "gridPos": {"x": x, "y": y, "w": self.w, "h": self.h},
            "fieldConfig": {"defaults": defaults, "overrides": self.overrides},
            "options": self.options,
            "targets": [t.json() for t in self.targets],
        }
        if self.transformations:
            out["transformations"] = self.transformations
        if self.time_from:
            out["timeFrom"] = self.time_from
        return out | self.extra


def stat(text_mode: str = "value_and_name", *, big: bool = False, field: str = "") -> Json:
    out: Json = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": field, "values": False},
        "colorMode": "background",
        "graphMode": "none",
        "justifyMode": "center",
        "orientation": "auto",
        "textMode": text_mode,
        "wideLayout": True,
        "showPercentChange": False,
    }
    if big:
        out["text"] = {"titleSize": 36, "valueSize": 72}
    return out


def timeseries_options() -> Json:
    return {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }


def band_lines(fill: int = 10) -> Json:
    """Time series style: lines, thresholds drawn as coloured bands behind them."""
    return {
        "drawStyle": "line",
        "lineWidth": 2,
        "fillOpacity": fill,
        "spanNulls": False,
        "showPoints": "never",
        "thresholdsStyle": {"mode": "line+area"},
    }


def table_options(sort: str | None = None, desc: bool = False) -> Json:
    out: Json = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}
    if sort:
        out["sortBy"] = [{"displayName": sort, "desc": desc}]
    return out


def column(name: str, **props: Any) -> Json:  # noqa: ANN401 - Grafana's property values
    """A field override by column name: ``unit``, ``mappings``, ``displayName``..."""
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [
            {"id": key.replace("_", "."), "value": value} for key, value in props.items()
        ],
    }


def hidden(*names: str) -> Json:
    return {"id": "organize", "options": {"excludeByName": dict.fromkeys(names, True)}}


def colored_cells() -> Json:
    return {"cellOptions": {"type": "color-background", "mode": "basic"}}


def variable(name: str, label: str, query: str, description: str) -> Json:
    return {
        "name": name,
        "label": label,
        "description": description,
        "type": "query",
        "datasource": INFLUX,
        "query": query,
        "definition": query,
        "refresh": 2,  # on time range change: a new room shows up without a reload
        "multi": True,
        "includeAll": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "sort": 1,
        "hide": 0,
    }


SITE_VAR = variable(
    "site",
    "Site",
    'SHOW TAG VALUES FROM "gateway" WITH KEY = "site"',
    "The building (library branch, school); choose one or several.",
)
ROOM_VAR = variable(
    "room",
    "Room",
    'SHOW TAG VALUES FROM "gateway" WITH KEY = "room" WHERE "site" =~ /^$site$/',
    "The learning rooms of the chosen sites; choose one or several.",
)
OPEN_HOURS_VAR: Final[Json] = {
    "name": "open_hours",
    "label": "Opening hours a day",
    "description": "How many hours a day the rooms are open; utilisation is measured against it.",
    "type": "textbox",
    "query": "12",
    "current": {"text": "12", "value": "12"},
    "options": [{"selected": True, "text": "12", "value": "12"}],
    "hide": 0,
}


def nav_links(here: str) -> list[Json]:
    """Links between the dashboards (by uid), keeping the time range and the variables."""
    names = {
        ROOMS_UID: "Room availability",
        ROOM_UID: "Room detail",
        IT_UID: "IT support",
        DISPLAY_UID: "Display",
    }
    links = [
        {
            "title": title,
            "type": "link",
            "url": f"/d/{uid}",
            "icon": "dashboard",
            "keepTime": True,
            "includeVars": True,
            "targetBlank": False,
            "asDropdown": False,
            "tags": [],
            "tooltip": f"Open the {title} dashboard",
        }
        for uid, title in names.items()
        if uid != here
    ]
    if here == IT_UID:
        links.append(
            {
                "title": "Alert groups (Alertmanager)",
                "type": "link",
                "url": f"/alerting/groups?alertmanager={ALERTMANAGER_UID}",
                "icon": "bolt",
                "keepTime": False,
                "includeVars": False,
                "targetBlank": False,
                "asDropdown": False,
                "tags": [],
                "tooltip": "What learnroom alerts has sent to Alertmanager, grouped",
            }
        )
    return links


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    panels: list[Panel]
    variables: list[Json]
    time_from: str = "now-6h"
    refresh: str = "1m"
    tags: tuple[str, ...] = ("learnroom",)
    kiosk: bool = False

    def layout(self) -> list[tuple[Panel, int, int]]:
        """Left to right, top to bottom; a panel that does not fit starts a new line."""
        out: list[tuple[Panel, int, int]] = []
        x = y = line_h = 0
        for panel in self.panels:
            if x + panel.w > GRID_COLUMNS:
                x, y, line_h = 0, y + line_h, 0
            out.append((panel, x, y))
            x += panel.w
            line_h = max(line_h, panel.h)
        return out

    @property
    def expects(self) -> dict[tuple[int, str], tuple[str, ...]]:
        """(panel id, refId) -> the columns that panel reads from the InfluxQL result."""
        return {
            (pid, t.ref): t.expects
            for pid, panel in enumerate(self.panels, start=1)
            for t in panel.targets
            if not t.prometheus
        }

    def json(self) -> Json:
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "editable": not self.kiosk,
            "graphTooltip": 1,
            "liveNow": False,
            "style": "dark",
            "timezone": "browser",
            "time": {"from": self.time_from, "to": "now"},
            "timepicker": {"hidden": self.kiosk},
            "refresh": self.refresh,
            "fiscalYearStartMonth": 0,
            "weekStart": "monday",
            "annotations": {"list": []},
            "templating": {"list": self.variables},
            "links": nav_links(self.uid),
            "panels": [p.json(i, x, y) for i, (p, x, y) in enumerate(self.layout(), start=1)],
        }


# --- 1. Room availability, for room coordinators -------------------------------------------


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
        ],
        [SITE_VAR, ROOM_VAR],
    )


# --- 2. Room detail -----------------------------------------------------------------------


def room_dashboard() -> Dashboard:
    per_interval = 'GROUP BY time($__interval), "room" fill(null)'
    minutes = 'GROUP BY time(1m), "room" fill(none)'

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

    def band_minutes(ref: str, name: str, cond: str) -> Target:
        return Target(
            ref,
            f'SELECT count("co2_ppm") AS "{name}" FROM ('
            f'SELECT mean("co2_ppm") AS "co2_ppm" FROM "environment" WHERE {WHERE} {minutes}) '
            f'WHERE {cond} AND $timeFilter GROUP BY "room"',
            ("room", name),
            fmt="table",
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
                f"Room temperature. Green between {_RULES.temperature.low:.0f} and "
                f"{_RULES.temperature.high:.0f} degrees Celsius (comfortable for quiet "
                "work); blue is too cold, red too warm.",
                "temperature_c",
                "temperature",
                "celsius",
                TEMPERATURE_BANDS,
                {"decimals": 1},
            ),
            air(
                "Humidity",
                f"Relative humidity of the air. Green between {_RULES.humidity.low:.0f} % "
                f"and {_RULES.humidity.high:.0f} %; drier air irritates eyes and throat, "
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
                "Minutes in each air quality band in the chosen time, next to the minutes "
                "the room was in use. CO2 only rises while people breathe in a room, so the "
                "'air the room' and 'open the windows' minutes are minutes of use; many of "
                "them mean the room needs airing more often or a ventilation check.",
                [
                    Target(
                        "A",
                        'SELECT count("people") AS "in use" FROM ('
                        'SELECT max("people") AS "people" FROM "occupancy" '
                        f"WHERE {WHERE} {minutes}) "
                        'WHERE "people" > 0 AND $timeFilter GROUP BY "room"',
                        ("room", "in use"),
                        fmt="table",
                    ),
                    band_minutes("B", "fine", f'"co2_ppm" < {CO2_WARN:.0f}'),
                    band_minutes(
                        "C",
                        "air the room",
                        f'"co2_ppm" >= {CO2_WARN:.0f} AND "co2_ppm" <= {CO2_CRIT:.0f}',
                    ),
                    band_minutes("D", "open the windows", f'"co2_ppm" > {CO2_CRIT:.0f}'),
                ],
                w=24,
                unit="m",
                defaults={"noValue": "0"},
                overrides=[
                    column("fine", color={"mode": "fixed", "fixedColor": GOOD}),
                    column("air the room", color={"mode": "fixed", "fixedColor": WARN}),
                    column("open the windows", color={"mode": "fixed", "fixedColor": BAD}),
                ],
                custom={"cellOptions": {"type": "color-text"}},
                transformations=[{"id": "merge", "options": {}}, hidden("Time")],
                options=table_options("room"),
            ),
        ],
        [SITE_VAR, ROOM_VAR, OPEN_HOURS_VAR],
        time_from="now-24h",
    )


# --- 3. IT support ------------------------------------------------------------------------


def it_dashboard() -> Dashboard:
    by_room = 'GROUP BY "site", "room"'
    per_interval = 'GROUP BY time($__interval), "site", "room" fill(none)'
    prom_rooms = 'site=~"$site", room=~"$room"'
    alerts = (
        'SELECT last("firing") AS "firing", last("message") AS "message" FROM "alert" '
        f'WHERE {WHERE}{{cond}} GROUP BY "site", "room", "rule", "severity"'
    )
    firing_only = {
        "id": "filterByValue",
        "options": {
            "type": "include",
            "match": "any",
            "filters": [
                {"fieldName": "firing", "config": {"id": "equal", "options": {"value": True}}}
            ],
        },
    }
    return Dashboard(
        IT_UID,
        "Learning rooms: IT support",
        "For IT support: gateways, their queues and temperature, Wi-Fi of every room, "
        "locker problems, active alerts and the central ingest.",
        [
            Panel(
                "stat",
                "Gateways online",
                "Each room's gateway as it last announced itself: Online, or Offline when "
                "it said goodbye or the broker lost it (MQTT Last Will).",
                [
                    Target(
                        "A",
                        f'SELECT last("online") AS "online" FROM "gateway" WHERE {WHERE} {by_room}',
                        ("online",),
                        alias="$tag_site/$tag_room",
                    )
                ],
                w=12,
                h=6,
                mappings=ONLINE,
                links=SERIES_LINK,
                options=stat(),
            ),
            Panel(
                "table",
                "Last seen",
                "When each gateway last sent its health report (every minute by default), "
                "and how long it has been running. Silent for 3 report intervals: treat it "
                "as offline even if it still says Online.",
                [
                    Target(
                        "A",
                        f'SELECT last("uptime_s") AS "uptime" FROM "gateway" '
                        f"WHERE {WHERE} {by_room}",
                        ("site", "room", "uptime"),
                        fmt="table",
                    )
                ],
                w=12,
                h=6,
                overrides=[
                    column("Time", unit="dateTimeFromNow", displayName="Last seen"),
                    column("uptime", unit="s", displayName="Running for"),
                    column("room", links=ROW_LINK),
                ],
                options=table_options("Last seen"),
            ),
            Panel(
                "timeseries",
                "Outbox depth",
                "Readings a gateway holds because it cannot reach the broker. It should be "
                "0; a rising line means the room's network or the broker is down. The "
                "gateway sends them all once it is back.",
                [
                    Target(
                        "A",
                        f'SELECT max("outbox_depth") AS "depth" FROM "gateway" '
                        f"WHERE {WHERE} {per_interval}",
                        ("depth",),
                        alias="$tag_site/$tag_room",
                    )
                ],
                w=8,
                unit="none",
                bands=thresholds(
                    (None, GOOD),
                    (_RULES.outbox_filling.clear, WARN),
                    (_RULES.outbox_filling.threshold, BAD),
                ),
                custom=band_lines(),
                defaults={"min": 0, "decimals": 0},
                color_mode="palette-classic",
                options=timeseries_options(),
            ),
            Panel(
                "timeseries",
                "Readings dropped",
                "Readings a gateway had to throw away since it started, because its outbox "
                "was full during a long outage. Anything above 0 is lost data.",
                [
                    Target(
                        "A",
                        f'SELECT max("outbox_dropped") AS "dropped" FROM "gateway" '
                        f"WHERE {WHERE} {per_interval}",
                        ("dropped",),
                        alias="$tag_site/$tag_room",
                    )
                ],
                w=8,
                unit="none",
                bands=thresholds((None, GOOD), (1.0, BAD)),
                custom=band_lines(),
                defaults={"min": 0, "decimals": 0},
                color_mode="palette-classic",
                options=timeseries_options(),
            ),
            Panel(
                "timeseries",
                "Gateway CPU temperature",
                "Temperature of each gateway's processor. A Raspberry Pi slows itself down "
                "from 80 degrees Celsius; above 70 check its case and airflow.",
                [
                    Target(
                        "A",
                        f'SELECT max("cpu_temp_c") AS "cpu" FROM "gateway" '
                        f"WHERE {WHERE} {per_interval}",
                        ("cpu",),
                        alias="$tag_site/$tag_room",
                    )
                ],
                w=8,
                unit="celsius",
                bands=CPU_TEMP_BANDS,
                custom=band_lines(),
                color_mode="palette-classic",
                options=timeseries_options(),
            ),
            Panel(
                "table",
                "Wi-Fi health of every room, worst first",
                f"Per room over the chosen time: the weakest signal (bad below "
                f"{const.WIFI_RSSI_DEGRADED_DBM:.0f} dBm), the worst packet loss (bad above "
                f"{const.WIFI_LOSS_DEGRADED_PCT:.0f} %) and the slowest name lookup (bad above "
                f"{const.WIFI_DNS_DEGRADED_MS:.0f} ms). Weakest signal at the top.",
                [
                    Target(
                        "A",
                        'SELECT min("rssi_dbm") AS "weakest signal", max("loss_pct") AS '
                        '"worst loss", max("dns_ms") AS "slowest lookup", '
                        'mean("rssi_dbm") AS "average signal" '
                        f'FROM "wifi" WHERE {WHERE} {by_room}',
                        ("site", "room", "weakest signal", "worst loss", "slowest lookup"),
                        fmt="table",
                    )
                ],
                w=24,
                custom=colored_cells(),
                overrides=[
                    column("weakest signal", unit="dBm", thresholds=RSSI_BANDS),
                    column("average signal", unit="dBm", thresholds=RSSI_BANDS),
                    column("worst loss", unit="percent", thresholds=LOSS_BANDS),
                    column("slowest lookup", unit="ms", thresholds=DNS_BANDS),
                    column("site", custom_cellOptions={"type": "auto"}),
                    column("room", links=ROW_LINK, custom_cellOptions={"type": "auto"}),
                ],
                transformations=[hidden("Time")],
                options=table_options("weakest signal"),
            ),
            Panel(
                "table",
                "Locker doors",
                f"Each locker's door as last reported. Open longer than "
                f"{const.LOCKER_DOOR_OPEN_MAX_S / 60:.0f} minutes raises an alert: "
                "somebody may have forgotten to close it.",
                [
                    Target(
                        "A",
                        f'SELECT last("open") AS "door" FROM "locker_door" '
                        f'WHERE {WHERE} GROUP BY "site", "room", "locker"',
                        ("site", "room", "locker", "door"),
                        fmt="table",
                    )
                ],
                w=8,
                custom=colored_cells(),
                overrides=[column("Time", unit="dateTimeFromNow", displayName="Since")],
                mappings=DOOR,
                options=table_options("door", desc=True),
            ),
            Panel(
                "table",
                "Locker slots: devices and charging",
                "Every slot: device in it or lent out, and charging or not. A device in "
                "its slot that is not charging (orange) needs its cable or charger checked.",
                [
                    Target(
                        "A",
                        'SELECT last("present") AS "present", last("charging") AS "charging" '
                        f'FROM "locker_slot" WHERE {WHERE} '
                        'GROUP BY "site", "room", "locker", "slot"',
                        ("site", "room", "locker", "slot", "present", "charging"),
                        fmt="table",
                    )
                ],
                w=8,
                custom=colored_cells(),
                overrides=[
                    column("present", mappings=PRESENT, displayName="Device"),
                    column("charging", mappings=CHARGING, displayName="Power"),
                ],
                transformations=[hidden("Time")],
                options=table_options("charging"),
            ),
            Panel(
                "table",
                "Overdue devices",
                "Devices not brought back by their due time, from the alert service "
                "(rule device_overdue). Empty is good.",
                [
                    Target(
                        "A",
                        alerts.format(cond=" AND \"rule\" = 'device_overdue'"),
                        ("room", "rule", "firing", "message"),
                        fmt="table",
                    )
                ],
                w=8,
                custom=colored_cells(),
                mappings=FIRING,
                transformations=[firing_only, hidden("Time", "rule", "severity")],
                options=table_options("room"),
            ),
            Panel(
                "table",
                "Active alerts",
                "What the alert service says is wrong now, with its message; the newest "
                "state of every alert in the chosen time, firing ones only. Alertmanager "
                "(link at the top) sends the same alerts by e-mail or chat.",
                [
                    Target(
                        "A",
                        alerts.format(cond=""),
                        ("site", "room", "rule", "severity", "firing", "message"),
                        fmt="table",
                    )
                ],
                w=24,
                custom=colored_cells(),
                overrides=[
                    column("Time", unit="dateTimeFromNow", displayName="Since"),
                    column(
                        "severity",
                        mappings=[
                            {
                                "type": "value",
                                "options": {
                                    "critical": {"color": BAD, "index": 0},
                                    "warning": {"color": WARN, "index": 1},
                                    "info": {"color": INFO, "index": 2},
                                },
                            }
                        ],
                    ),
                    column("message", custom_cellOptions={"type": "auto"}),
                ],
                mappings=FIRING,
                transformations=[firing_only],
                options=table_options("severity"),
            ),
            Panel(
                "timeseries",
                "Ingest: rejected messages",
                "Messages the central ingest refused, per reason (invalid, not JSON, topic "
                "and content disagree, unknown version, too big). A steady stream from one "
                "reason points at a misconfigured or outdated gateway. Needs the optional "
                "Prometheus data source scraping the ingest's /metrics.",
                [
                    Target(
                        "A",
                        "sum by (reason) "
                        "(increase(learnroom_ingest_messages_rejected_total[$__rate_interval]))",
                        prometheus=True,
                        legend="{{reason}}",
                    )
                ],
                w=8,
                unit="none",
                custom=band_lines(),
                color_mode="palette-classic",
                options=timeseries_options(),
            ),
            Panel(
                "timeseries",
                "Ingest: gaps in the gateways' numbering",
                "Each gateway numbers its messages; this counts numbers never seen per room "
                "(missing now) and over all rooms (lost for good). Missing numbers that stay "
                "mean lost readings. Prometheus data source.",
                [
                    Target(
                        "A",
                        f"max by (site, room) (learnroom_ingest_seq_missing{{{prom_rooms}}})",
                        prometheus=True,
                        legend="{{site}}/{{room}} missing",
                    ),
                    Target(
                        "B",
                        "sum(increase(learnroom_ingest_seq_lost_total[$__rate_interval]))",
                        prometheus=True,
                        legend="lost",
                    ),
                ],
                w=8,
                unit="none",
                custom=band_lines(),
                color_mode="palette-classic",
                options=timeseries_options(),
            ),
            Panel(
                "stat",
                "Ingest: database writer and backlog",
                "Writer: Up while the ingest can write to InfluxDB. Pending: messages "
                "received but not yet written; it grows while the database is down and "
                "empties by itself afterwards. Prometheus data source.",
                [
                    Target(
                        "A",
                        "min(learnroom_ingest_writer_up)",
                        prometheus=True,
                        legend="writer",
                    ),
                    Target(
                        "B",
                        "sum(learnroom_ingest_pending_messages)",
                        prometheus=True,
                        legend="pending",
                    ),
                ],
                w=8,
                bands=thresholds((None, GOOD), (1000.0, WARN)),
                overrides=[
                    {
                        "matcher": {"id": "byFrameRefID", "options": "A"},
                        "properties": [
                            {
                                "id": "mappings",
                                "value": [
                                    {
                                        "type": "value",
                                        "options": {
                                            "0": {"text": "Down", "color": BAD, "index": 0},
                                            "1": {"text": "Up", "color": GOOD, "index": 1},
                                        },
                                    }
                                ],
                            }
                        ],
                    }
                ],
                options=stat(),
            ),
        ],
        [SITE_VAR, ROOM_VAR],
    )


# --- 4. Display ---------------------------------------------------------------------------


def display_dashboard() -> Dashboard:
    by_room = 'GROUP BY "room"'
    return Dashboard(
        DISPLAY_UID,
        "Learning rooms: display",
        "A kiosk view for a screen in the entrance: which rooms are free, free seats and "
        "devices, large and high-contrast. Open it with &kiosk in the address.",
        [
            Panel(
                "stat",
                "Free rooms",
                "Green FREE: come in. Dark OCCUPIED: people are working there.",
                [
                    Target(
                        "A",
                        f'SELECT last("occupied") AS "occupied" FROM "occupancy" '
                        f"WHERE {WHERE_SITE} {by_room}",
                        ("occupied",),
                        alias="$tag_room",
                    )
                ],
                w=24,
                h=9,
                mappings=bool_map(("OCCUPIED", "dark-red"), ("FREE", "dark-green")),
                options=stat(big=True),
            ),
            Panel(
                "stat",
                "Free seats",
                "Seats nobody sits on now, per room.",
                [
                    Target(
                        "A",
                        f'SELECT last("seats_free") AS "seats" FROM "occupancy" '
                        f"WHERE {WHERE_SITE} {by_room}",
                        ("seats",),
                        alias="$tag_room",
                    )
                ],
                h=8,
                unit="none",
                bands=thresholds((None, "dark-red"), (1.0, "dark-green")),
                defaults={"decimals": 0},
                options=stat(big=True),
            ),
            Panel(
                "stat",
                "Devices to borrow",
                "Tablets and laptops waiting in the lockers, per room.",
                [
                    Target(
                        "A",
                        'SELECT count("present") AS "devices" FROM ('
                        'SELECT last("present") AS "present" FROM "locker_slot" '
                        f'WHERE {WHERE_SITE} GROUP BY "room", "locker", "slot") '
                        f'WHERE "present" = true AND $timeFilter {by_room}',
                        ("devices",),
                        alias="$tag_room",
                    )
                ],
                h=8,
                unit="none",
                bands=thresholds((None, "dark-red"), (1.0, "dark-green")),
                defaults={"noValue": "0", "decimals": 0},
                options=stat(big=True),
            ),
        ],
        [SITE_VAR],
        time_from="now-1h",
        refresh="30s",
        tags=("learnroom", "kiosk"),
        kiosk=True,
    )


def dashboards() -> list[Dashboard]:
    return [rooms_dashboard(), room_dashboard(), it_dashboard(), display_dashboard()]


def file_name(dashboard: Dashboard) -> str:
    return f"{dashboard.uid}.json"


def render(dashboard: Dashboard) -> str:
    """The file's text: stable key order as built, two-space indent, final newline."""
    return json.dumps(dashboard.json(), indent=2, ensure_ascii=False) + "\n"


def write_all(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for dashboard in dashboards():
        path = out_dir / file_name(dashboard)
        path.write_text(render(dashboard), encoding="utf-8")
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -m gateway.central.tools.dashboards OUT_DIR\n")
        return 2
    for path in write_all(Path(args[0])):
        sys.stdout.write(f"{path}\n")
    return 0
