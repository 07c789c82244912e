"""The envelope and every ``data`` kind of ../shared/DESIGN.md as pydantic v2 models.

Both sides import these: the agent builds envelopes with them, the central side validates
what arrives. Ranges are physical limits of the sensors; a value outside is a fault, and the
ingest rejects it rather than draw it on a dashboard.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    TypeAdapter,
    field_validator,
)

from gateway import const

Slug = Annotated[str, StringConstraints(pattern=const.SLUG_PATTERN)]
NonNegInt = Annotated[int, Field(ge=0)]


def format_ts(ts: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, as DESIGN.md fixes it."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


Timestamp = Annotated[datetime, PlainSerializer(format_ts, return_type=str, when_used="json")]


def _range(bounds: tuple[float, float]) -> Any:  # noqa: ANN401 - a pydantic Field
    return Field(default=None, ge=bounds[0], le=bounds[1])


class _Data(BaseModel):
    """Payload data: strict about unknown keys so a typo on a satellite is seen, not lost."""

    # defer_build: a gateway validates a handful of kinds; building every schema at import
    # would cost it megabytes of RSS on a Pi for models it never touches
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class StatusData(_Data):
    online: bool
    version: str | None = None
    started: Timestamp | None = None


class OccupancyData(_Data):
    people: NonNegInt | None = None
    occupied: bool
    seats_total: NonNegInt | None = None
    seats_free: NonNegInt | None = None
    capacity: NonNegInt | None = None


class EnvironmentData(_Data):
    co2_ppm: float | None = _range(const.CO2_RANGE_PPM)
    temperature_c: float | None = _range(const.TEMPERATURE_RANGE_C)
    humidity_pct: float | None = _range(const.HUMIDITY_RANGE_PCT)
    noise_dba: float | None = _range(const.NOISE_RANGE_DBA)
    illuminance_lux: float | None = _range(const.ILLUMINANCE_RANGE_LUX)
    #: False when a fitted sensor is absent, stuck or out of range (the fields are then null).
    sensor_ok: bool = True


class WifiData(_Data):
    ssid: str | None = None
    bssid: str | None = None
    freq_mhz: NonNegInt | None = None
    rssi_dbm: float | None = _range(const.RSSI_RANGE_DBM)
    bitrate_mbps: float | None = Field(default=None, ge=0)
    latency_ms: float | None = Field(default=None, ge=0)
    jitter_ms: float | None = Field(default=None, ge=0)
    loss_pct: float | None = Field(default=None, ge=0, le=100)
    dns_ms: float | None = Field(default=None, ge=0)
    portal_ok: bool | None = None
    ok: bool


class SlotState(_Data):
    slot: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    present: bool
    charging: bool | None = None


class LockerData(_Data):
    door_open: bool
    slots: list[SlotState]


EventType = Literal[
    "checkout",
    "return",
    "door_opened",
    "door_closed",
    "badge_denied",
    "badge_accepted",
    "overdue",
    "roamed",
    "people_reset",
    # published by the display: a booking began 15 min ago and nobody is in the room
    "no_show",
]


class EventData(_Data):
    type: EventType
    locker: str | None = None
    slot: str | None = None
    #: Keyed hash of a badge ID (see ``gateway.agent.sources.badge``), never the ID itself.
    borrower: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16,64}$")] | None = None
    due: Timestamp | None = None
    detail: str | None = Field(default=None, max_length=200)


class HealthData(_Data):
    uptime_s: float = Field(ge=0)
    cpu_pct: float | None = Field(default=None, ge=0)
    mem_rss_mb: float | None = Field(default=None, ge=0)
    cpu_temp_c: float | None = None
    disk_free_mb: float | None = Field(default=None, ge=0)
    outbox_depth: NonNegInt
    outbox_dropped: NonNegInt
    #: Sources whose last attempt failed (e.g. ``["environment"]``); empty when all is well.
    faults: list[str] = Field(default_factory=list)


class AlertData(_Data):
    """Set by the alert service on ``{p}/alerts/<rule>``; an empty payload clears."""

    rule: str
    severity: Literal["info", "warning", "critical"]
    firing: bool
    #: English; ``message_de`` the same in German (DESIGN.md names one message; both help).
    message: str
    message_de: str | None = None
    #: What in the room the alert is about, e.g. ``tablets`` or ``tablets/3``.
    target: str | None = None
    since: Timestamp | None = None


class _EnvelopeBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    v: Literal[1] = 1
    site: Slug
    room: Slug
    ts: Timestamp
    #: Rises by one per message of a gateway across restarts; absent only in the Last Will.
    seq: NonNegInt | None = None

    @field_validator("v", mode="before")
    @classmethod
    def _not_a_bool(cls, value: object) -> object:
        if isinstance(value, bool):  # JSON true equals 1 to Python; it is no version
            raise ValueError("v must be the number 1")  # noqa: TRY004 - pydantic wants ValueError
        return value

    @field_validator("ts")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("ts must carry a time zone, e.g. 2026-11-22T11:00:00.000Z")
        # the wire carries milliseconds: hold no more, so a round trip is exact
        return value.astimezone(UTC).replace(microsecond=value.microsecond // 1000 * 1000)


class StatusEnvelope(_EnvelopeBase):
    kind: Literal["status"] = "status"
    data: StatusData


class OccupancyEnvelope(_EnvelopeBase):
    kind: Literal["occupancy"] = "occupancy"
    data: OccupancyData


class EnvironmentEnvelope(_EnvelopeBase):
    kind: Literal["environment"] = "environment"
    data: EnvironmentData


class WifiEnvelope(_EnvelopeBase):
    kind: Literal["wifi"] = "wifi"
    data: WifiData


class LockersEnvelope(_EnvelopeBase):
    kind: Literal["lockers"] = "lockers"
    data: LockerData


class EventsEnvelope(_EnvelopeBase):
    kind: Literal["events"] = "events"
    data: EventData


class HealthEnvelope(_EnvelopeBase):
    kind: Literal["health"] = "health"
    data: HealthData


class AlertsEnvelope(_EnvelopeBase):
    kind: Literal["alerts"] = "alerts"
    data: AlertData


Envelope = Annotated[
    StatusEnvelope
    | OccupancyEnvelope
    | EnvironmentEnvelope
    | WifiEnvelope
    | LockersEnvelope
    | EventsEnvelope
    | HealthEnvelope
    | AlertsEnvelope,
    Field(discriminator="kind"),
]
AnyData = (
    StatusData
    | OccupancyData
    | EnvironmentData
    | WifiData
    | LockerData
    | EventData
    | HealthData
    | AlertData
)


@functools.cache
def envelope_adapter() -> TypeAdapter[Envelope]:
    """Built on first use: the central side parses every kind, a gateway never does."""
    return TypeAdapter(Envelope)


DATA_MODELS: dict[str, type[_Data]] = {
    "status": StatusData,
    "occupancy": OccupancyData,
    "environment": EnvironmentData,
    "wifi": WifiData,
    "lockers": LockerData,
    "events": EventData,
    "health": HealthData,
    "alerts": AlertData,
}
ENVELOPE_MODELS: dict[str, type[_EnvelopeBase]] = {
    "status": StatusEnvelope,
    "occupancy": OccupancyEnvelope,
    "environment": EnvironmentEnvelope,
    "wifi": WifiEnvelope,
    "lockers": LockersEnvelope,
    "events": EventsEnvelope,
    "health": HealthEnvelope,
    "alerts": AlertsEnvelope,
}


def kind_of(data: AnyData) -> str:
    """The envelope kind a data model travels under."""
    for kind, model in DATA_MODELS.items():
        if type(data) is model:
            return kind
    raise TypeError(f"{type(data).__name__} is not an envelope data model")


def make_envelope(
    site: str, room: str, data: AnyData, ts: datetime, seq: int | None
) -> _EnvelopeBase:
    """Wrap ``data`` in the envelope of its kind."""
    model = ENVELOPE_MODELS[kind_of(data)]
    return model.model_validate({"site": site, "room": room, "ts": ts, "seq": seq, "data": data})


def parse_envelope(payload: bytes | bytearray | str) -> Envelope:
    """Validate a payload; raises pydantic's ``ValidationError`` naming the bad field."""
    return envelope_adapter().validate_json(payload)


def envelope_json_schema() -> dict[str, Any]:
    """JSON Schema of the envelope for third parties (``learnroom schema``)."""
    schema = envelope_adapter().json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://learnroom.example/schema/envelope-v1.json"
    schema["title"] = "learnroom MQTT envelope v1"
    return schema
