"""Envelopes to InfluxDB points, table-driven, as DESIGN.md's "InfluxDB schema" says.

Each envelope becomes ``Row`` values (measurement, tags, typed fields, time in ms), and each
row one line of line protocol. The escaping is influxdb-client's (``Point``): commas, equals
signs and spaces in tags, quotes and backslashes in strings, whole floats without ".0"; a test
holds our lines equal to ``Point``'s for arbitrary values. We do not call ``Point`` on the hot
path because it costs about 20 us a point, more than validating the whole message. Two tag cases
line protocol cannot carry are cleaned first: line breaks and tabs become spaces, and a
trailing backslash (which would escape the separator after it) is dropped. Integers keep their
``i`` suffix, so a field never changes type (InfluxDB refuses a float field later written as
integer). Non-finite floats are left out, as ``Point`` does. The borrower never becomes a point.
Only the fields this table names reach a point: what a newer gateway adds is ignored here
(``validate.check`` has already dropped and counted it).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.models import EVENT_TYPES, EventsEnvelope, LockersEnvelope

AnyEnvelope = Any  # one of the envelope models; kept loose for the table below

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_ESCAPE_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ "})
_ESCAPE_TAG = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_ESCAPE_STRING = str.maketrans({'"': r"\"", "\\": r"\\"})
_BREAKS = str.maketrans({"\r": " ", "\n": " ", "\t": " "})


def clean_tag(value: str) -> str:
    """A tag value line protocol can carry: no line breaks or tabs, no trailing backslash."""
    return value.translate(_BREAKS).rstrip("\\") or "_"


@dataclass(frozen=True, slots=True)
class Row:
    """One point: tags already cleaned, fields typed (int fields stay int)."""

    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: tuple[tuple[str, bool | int | float | str], ...]
    time_ms: int

    def line(self) -> str:
        fields = ",".join([f"{k}={_field(v)}" for k, v in self.fields])
        return f"{_series(self.measurement, self.tags)} {fields} {self.time_ms}"


@functools.lru_cache(maxsize=1 << 16)
def _series(measurement: str, tags: tuple[tuple[str, str], ...]) -> str:
    """The escaped measurement and tags: the same few per gateway, so they are made once."""
    escaped = "".join([f",{k}={v.translate(_ESCAPE_TAG)}" for k, v in tags])
    return f"{measurement.translate(_ESCAPE_MEASUREMENT)}{escaped}"


def _field(value: bool | int | float | str) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        text = str(value)
        return text[:-2] if text.endswith(".0") else text
    return f'"{value.translate(_ESCAPE_STRING)}"'


def _head(
    measurement: str, env: AnyEnvelope, **tags: str | None
) -> tuple[str, tuple[tuple[str, str], ...], int]:
    pairs = {"site": env.site, "room": env.room}
    for key, value in tags.items():
        if value is not None:
            pairs[key] = clean_tag(value)
    return measurement, tuple(sorted(pairs.items())), (env.ts - _EPOCH) // _MS


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
        # the room's occupied state when the reading was taken (issue 15): absent from older
        # gateways, so a point without it is a reading of unknown occupancy
        bools=("occupied",),
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


#: The kinds that fan out into several points (a locker's door and slots, a counted event);
#: the code below fills them, these rows name them for the rollup (``central/setup.py``).
LOCKER_SLOT = Spec("locker_slot", tags=("locker", "slot"), bools=("present", "charging"))
LOCKER_DOOR = Spec("locker_door", tags=("locker",), bools=("open",))
LOCKER_EVENT = Spec("locker_event", tags=("locker", "slot", "type"), ints=("count",))
FANOUT: tuple[Spec, ...] = (LOCKER_SLOT, LOCKER_DOOR, LOCKER_EVENT)


def _fields(
    head: tuple[str, tuple[tuple[str, str], ...], int],
    values: dict[str, Any],
    ints: Iterable[str] = (),
) -> Row | None:
    as_int = set(ints)
    out: list[tuple[str, bool | int | float | str]] = []
    for key, value in sorted(values.items()):
        if value is None:
            continue
        if isinstance(value, bool | str):
            out.append((key, value))
        elif key in as_int:
            out.append((key, int(value)))
        elif math.isfinite(value):
            out.append((key, float(value)))
    return Row(head[0], head[1], tuple(out), head[2]) if out else None


def _from_table(env: AnyEnvelope, spec: Spec) -> list[Row | None]:
    d = env.data
    names = spec.ints + spec.floats + spec.bools + spec.strings
    head = _head(spec.measurement, env, **{t: getattr(d, t) for t in spec.tags})
    return [_fields(head, {n: getattr(d, n) for n in names}, ints=spec.ints)]


def _lockers(env: LockersEnvelope, locker: str | None) -> list[Row | None]:
    d = env.data
    out = [_fields(_head(LOCKER_DOOR.measurement, env, locker=locker), {"open": d.door_open})]
    out += [
        _fields(
            _head(LOCKER_SLOT.measurement, env, locker=locker, slot=s.slot),
            {"present": s.present, "charging": s.charging},
        )
        for s in d.slots
    ]
    return out


def _events(env: EventsEnvelope) -> list[Row | None]:
    d = env.data
    if d.locker is None or d.type not in EVENT_TYPES:
        # roaming, resets, badges at the reader: not locker events; a type from a newer
        # gateway is no tag value until this table knows it (one series per invented name)
        return []
    # one event, counted: the borrower's pseudonym never reaches the database
    head = _head(LOCKER_EVENT.measurement, env, locker=d.locker, slot=d.slot, type=d.type)
    return [_fields(head, {"count": 1}, ints=LOCKER_EVENT.ints)]


def to_points(env: AnyEnvelope, sub: str | None = None) -> list[Row]:
    """The points of one envelope; ``sub`` is the topic's locker id for ``lockers``."""
    if env.kind == "lockers":
        points = _lockers(env, sub)
    elif env.kind == "events":
        points = _events(env)
    else:
        points = _from_table(env, TABLE[env.kind])
    return [p for p in points if p is not None]


def to_lines(env: AnyEnvelope, sub: str | None = None) -> list[str]:
    """The lines of ``to_points(env, sub)``, made without building rows: this runs once per
    message on the ingest's receive thread, where rows cost 60 % of the mapping (a test holds
    the two equal for arbitrary values)."""
    kind = env.kind
    if kind == "lockers":
        return _locker_lines(env, sub)
    if kind == "events":  # rare: built as rows
        return [p.line() for p in to_points(env, sub)]
    spec = TABLE[kind]
    values = env.data.__dict__  # a pydantic model's fields; getattr goes through descriptors
    if spec.tags:
        _, tags, _ = _head(spec.measurement, env, **{t: values[t] for t in spec.tags})
        series = _series(spec.measurement, tags)
    else:
        series = _site_room_series(spec.measurement, env.site, env.room)
    parts = []
    for name, as_int in _plan(spec):
        value = values[name]
        if value is None:
            continue
        if value is True:
            parts.append(f"{name}=true")
        elif value is False:
            parts.append(f"{name}=false")
        elif isinstance(value, str):
            parts.append(f'{name}="{value.translate(_ESCAPE_STRING)}"')
        elif as_int:
            parts.append(f"{name}={int(value)}i")
        elif math.isfinite(value):
            text = str(float(value))
            parts.append(f"{name}={text[:-2] if text.endswith('.0') else text}")
    if not parts:
        return []
    return [f"{series} {','.join(parts)} {(env.ts - _EPOCH) // _MS}"]


def _locker_lines(env: LockersEnvelope, locker: str | None) -> list[str]:
    """``_lockers`` as lines: the door, then each slot (``present``, then ``charging``)."""
    d = env.data
    time_ms = (env.ts - _EPOCH) // _MS
    door = _locker_series(LOCKER_DOOR.measurement, env.site, env.room, locker, None)
    out = [f"{door} open={'true' if d.door_open else 'false'} {time_ms}"]
    for s in d.slots:
        series = _locker_series(LOCKER_SLOT.measurement, env.site, env.room, locker, s.slot)
        charging = s.charging
        if charging is None:
            fields = "present=true" if s.present else "present=false"
        else:
            fields = f"charging={'true' if charging else 'false'},present=" + (
                "true" if s.present else "false"
            )
        out.append(f"{series} {fields} {time_ms}")
    return out


@functools.lru_cache(maxsize=1 << 16)
def _locker_series(
    measurement: str, site: str, room: str, locker: str | None, slot: str | None
) -> str:
    tags = {"site": site, "room": room}
    for key, value in (("locker", locker), ("slot", slot)):
        if value is not None:
            tags[key] = clean_tag(value)
    return _series(measurement, tuple(sorted(tags.items())))


@functools.lru_cache(maxsize=64)
def _plan(spec: Spec) -> tuple[tuple[str, bool], ...]:
    """A spec's fields in line order (sorted, as ``_fields`` writes them), each with whether
    it is stored as an integer."""
    names = spec.ints + spec.floats + spec.bools + spec.strings
    return tuple((name, name in spec.ints) for name in sorted(names))


@functools.lru_cache(maxsize=1 << 16)
def _site_room_series(measurement: str, site: str, room: str) -> str:
    return _series(measurement, (("room", room), ("site", site)))
