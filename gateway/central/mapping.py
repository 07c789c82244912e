"""Envelopes to InfluxDB points, table-driven, as DESIGN.md's "InfluxDB schema" says.

Line protocol comes from influxdb-client's ``Point`` (its escaping of spaces, commas, equals
signs and quotes); two cases it gets wrong are fixed before: a tag value with a newline
(line protocol has none) and one ending in a backslash (which would escape the separator
after it). Integers keep their ``i`` suffix, so a field never changes type (InfluxDB refuses
a float field later written as integer). The borrower never becomes a point.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision

from gateway.models import EventsEnvelope, LockersEnvelope

AnyEnvelope = Any  # one of the envelope models; kept loose for the table below


def clean_tag(value: str) -> str:
    """A tag value line protocol can carry: no line breaks, no trailing backslash."""
    value = value.replace("\r", " ").replace("\n", " ")
    return value.rstrip("\\") or "_"


def _point(measurement: str, env: AnyEnvelope, **tags: str | None) -> Point:
    point = Point(measurement).tag("site", env.site).tag("room", env.room)
    for key, value in tags.items():
        if value is not None:
            point = point.tag(key, clean_tag(value))
    ts_ms = int(env.ts.timestamp() * 1000)
    timed: Point = point.time(ts_ms, WritePrecision.MS)
    return timed


@dataclass(frozen=True)
class Spec:
    """One row of the schema table: a kind's measurement, its extra tags and typed fields."""

    measurement: str
    tags: tuple[str, ...] = ()
    ints: tuple[str, ...] = ()
    floats: tuple[str, ...] = ()
    bools: tuple[str, ...] = ()
    strings: tuple[str, ...] = ()


#: DESIGN.md "InfluxDB schema", kind by kind (lockers and events fan out, see below).
TABLE: dict[str, Spec] = {
    "occupancy": Spec(
        "occupancy",
        ints=("people", "seats_free", "seats_total", "capacity"),
        bools=("occupied",),
    ),
    "environment": Spec(
        "environment",
        floats=("co2_ppm", "temperature_c", "humidity_pct", "noise_dba", "illuminance_lux"),
    ),
    "wifi": Spec(
        "wifi",
        tags=("ssid",),
        floats=("rssi_dbm", "bitrate_mbps", "latency_ms", "jitter_ms", "loss_pct", "dns_ms"),
        bools=("portal_ok", "ok"),
        strings=("bssid",),
    ),
    "health": Spec(
        "gateway",
        floats=("uptime_s", "cpu_pct", "mem_rss_mb", "cpu_temp_c", "disk_free_mb"),
        ints=("outbox_depth", "outbox_dropped"),
    ),
    "status": Spec("gateway", bools=("online",), strings=("version",)),
    "alerts": Spec("alert", tags=("rule", "severity"), bools=("firing",), strings=("message",)),
}


def _fields(point: Point, values: dict[str, Any], ints: Iterable[str] = ()) -> Point | None:
    as_int = set(ints)
    added = False
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool | str):
            point = point.field(key, value)
        elif key in as_int:
            point = point.field(key, int(value))
        else:
            point = point.field(key, float(value))
        added = True
    return point if added else None


def _from_table(env: AnyEnvelope, spec: Spec) -> list[Point | None]:
    d = env.data
    names = spec.ints + spec.floats + spec.bools + spec.strings
    point = _point(spec.measurement, env, **{t: getattr(d, t) for t in spec.tags})
    return [_fields(point, {n: getattr(d, n) for n in names}, ints=spec.ints)]


def _lockers(env: LockersEnvelope, locker: str | None) -> list[Point | None]:
    d = env.data
    out = [_fields(_point("locker_door", env, locker=locker), {"open": d.door_open})]
    out += [
        _fields(
            _point("locker_slot", env, locker=locker, slot=s.slot),
            {"present": s.present, "charging": s.charging},
        )
        for s in d.slots
    ]
    return out


def _events(env: EventsEnvelope) -> list[Point | None]:
    d = env.data
    if d.locker is None:
        return []  # roaming, resets, badges at the reader: not locker events
    # one event, counted: the borrower's pseudonym never reaches the database
    point = _point("locker_event", env, locker=d.locker, slot=d.slot, type=d.type)
    return [_fields(point, {"count": 1}, ints=("count",))]


def to_points(env: AnyEnvelope, sub: str | None = None) -> list[Point]:
    """The points of one envelope; ``sub`` is the topic's locker id for ``lockers``."""
    if env.kind == "lockers":
        points = _lockers(env, sub)
    elif env.kind == "events":
        points = _events(env)
    else:
        points = _from_table(env, TABLE[env.kind])
    return [p for p in points if p is not None]


def to_lines(env: AnyEnvelope, sub: str | None = None) -> list[str]:
    return [p.to_line_protocol() for p in to_points(env, sub)]
