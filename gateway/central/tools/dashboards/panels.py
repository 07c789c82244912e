"""What every dashboard is built from: the data sources, the queries' WHERE clauses, the
colour bands from the contract's thresholds, and the panel and target builders.

Kept apart from the dashboards so that a colour or a threshold means the same on all four, and
so that a dashboard module reads as the list of its panels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from gateway import const
from gateway.central.thresholds import Rules
from gateway.central.tools.influx_setup import CO2_BAND_FIELDS, rollup_rp

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

#: The default alert settings (per site and room configurable); drawn as bands.
RULES: Final = Rules()
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

#: The 5-minute rollup (``learnroom influx-setup``): the only place where minutes occupied in
#: each CO2 band are one sum (``influx_setup.DERIVED``); a longer range reads less from it.
ROLLUP: Final = f'"{rollup_rp()}"'
#: Column names of the three UBA bands while the room is occupied, in CO2_BAND_FIELDS order.
BAND_NAMES: Final = ("fine", "air the room", "open the windows")


def occupied_bands(group_by: str) -> str:
    """One query: minutes occupied in each UBA band per group, from the rollup."""
    sums = ", ".join(
        f'sum("{field}") AS "{name}"'
        for field, name in zip(CO2_BAND_FIELDS, BAND_NAMES, strict=True)
    )
    return f'SELECT {sums} FROM {ROLLUP}."environment" WHERE {WHERE} GROUP BY {group_by}'  # noqa: S608


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
    (None, INFO), (RULES.temperature.low, GOOD), (RULES.temperature.high, BAD)
)
HUMIDITY_BANDS: Final = thresholds(
    (None, WARN), (RULES.humidity.low, GOOD), (RULES.humidity.high, WARN)
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


#: The band columns of a table in their colours.
BAND_COLUMNS: Final = [
    column(name, color={"mode": "fixed", "fixedColor": colour})
    for name, colour in zip(BAND_NAMES, (GOOD, WARN, BAD), strict=True)
]
