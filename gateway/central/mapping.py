"""Envelopes to InfluxDB points, table-driven, as DESIGN.md's "InfluxDB schema" says.

Line protocol comes from influxdb-client's ``Point`` (its escaping of spaces, commas, equals
signs and quotes); two cases it gets wrong are fixed before: a tag value with a newline
(line protocol has none) and one ending in a backslash (which would escape the separator
after it). Integers keep their ``i`` suffix, so a field never changes type (InfluxDB refuses
a float field later written as integer). The borrower never becomes a point.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision

from gateway.models import (
    AlertsEnvelope,
    EnvironmentEnvelope,
    EventsEnvelope,
    HealthEnvelope,
    LockersEnvelope,
    OccupancyEnvelope,
    StatusEnvelope,
    WifiEnvelope,
)

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


def _fields(point: Point, values: dict[str, Any], ints: Iterable[str] = ()) -> Point | None:
    as_int = set(ints)
    added = False
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, (bool, str)):
            point = point.field(key, value)
        elif key in as_int:
            point = point.field(key, int(value))
        else:
            point = point.field(key, float(value))
        added = True
    return point if added else None


def _occupancy(env: OccupancyEnvelope) -> list[Point | None]:
    d = env.data
    return [
        _fields(
            _point("occupancy", env),
            {
                "people": d.people,
                "seats_free": d.seats_free,
                "seats_total": d.seats_total,
                "capacity": d.capacity,
                "occupied": d.occupied,
            },
            ints=("people", "seats_free", "seats_total", "capacity"),
        )
    ]


def _environment(env: EnvironmentEnvelope) -> list[Point | None]:
    d = env.data
    return [
        _fields(
            _point("environment", env),
            {
                "co2_ppm": d.co2_ppm,
                "temperature_c": d.temperature_c,
                "humidity_pct": d.humidity_pct,
                "noise_dba": d.noise_dba,
                "illuminance_lux": d.illuminance_lux,
            },
        )
    ]


def _wifi(env: WifiEnvelope) -> list[Point | None]:
    d = env.data
    return [
        _fields(
            _point("wifi", env, ssid=d.ssid),
            {
                "rssi_dbm": d.rssi_dbm,
                "bitrate_mbps": d.bitrate_mbps,
                "latency_ms": d.latency_ms,
                "jitter_ms": d.jitter_ms,
                "loss_pct": d.loss_pct,
                "dns_ms": d.dns_ms,
                "portal_ok": d.portal_ok,
                "ok": d.ok,
                "bssid": d.bssid,
            },
        )
    ]


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


def _health(env: HealthEnvelope) -> list[Point | None]:
    d = env.data
    return [
        _fields(
            _point("gateway", env),
            {
                "uptime_s": d.uptime_s,
                "cpu_pct": d.cpu_pct,
                "mem_rss_mb": d.mem_rss_mb,
                "cpu_temp_c": d.cpu_temp_c,
                "disk_free_mb": d.disk_free_mb,
                "outbox_depth": d.outbox_depth,
                "outbox_dropped": d.outbox_dropped,
            },
            ints=("outbox_depth", "outbox_dropped"),
        )
    ]


def _status(env: StatusEnvelope) -> list[Point | None]:
    d = env.data
    return [_fields(_point("gateway", env), {"online": d.online, "version": d.version})]


def _alerts(env: AlertsEnvelope) -> list[Point | None]:
    d = env.data
    point = _point("alert", env, rule=d.rule, severity=d.severity)
    return [_fields(point, {"firing": d.firing, "message": d.message})]


MAPPERS: dict[str, Callable[..., list[Point | None]]] = {
    "occupancy": _occupancy,
    "environment": _environment,
    "wifi": _wifi,
    "events": _events,
    "health": _health,
    "status": _status,
    "alerts": _alerts,
}


def to_points(env: AnyEnvelope, sub: str | None = None) -> list[Point]:
    """The points of one envelope; ``sub`` is the topic's locker id for ``lockers``."""
    points = _lockers(env, sub) if env.kind == "lockers" else MAPPERS[env.kind](env)
    return [p for p in points if p is not None]


def to_lines(env: AnyEnvelope, sub: str | None = None) -> list[str]:
    return [p.to_line_protocol() for p in to_points(env, sub)]
