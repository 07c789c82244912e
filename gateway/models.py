"""The envelope and every ``data`` kind of ../shared/DESIGN.md as pydantic v2 models.

Both sides import these: the agent builds envelopes with them, the central side validates
what arrives. Ranges are physical limits of the sensors; a value outside is a fault, and the
ingest rejects it rather than draw it on a dashboard.

Strict construction, lenient parsing (protobuf's habit, DESIGN.md "Compatibility"): a model
built in Python refuses a field it does not declare, so a gateway cannot send a typo; a
message read from the wire with ``parse_envelope`` keeps every field it knows, drops the ones
it does not and reports their names, so a newer gateway's additions never cost a reading.
What the store cannot hold is refused with an error type ``validate.check`` counts: integers
beyond int64, non-finite floats, timestamps without a zone or outside 2000-2099.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Final, Literal, Self, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    TypeAdapter,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from gateway import const

# pydantic's patterns run on Rust's regex, where "$" is the end of the text (no trailing
# newline slips through as with Python's re.match); tests hold that
Slug = Annotated[str, StringConstraints(pattern=const.SLUG_PATTERN)]
#: Locker and slot ids become InfluxDB tags: one topic level, no spaces or line breaks. Wider
#: than a slug because agent configs allow capitals and "_" (``agent.config.LockerId``).
ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
#: InfluxDB stores signed 64-bit integers; a larger one would be refused by the whole batch.
INT64_MAX: Final = 2**63 - 1
NonNegInt = Annotated[int, Field(ge=0, le=INT64_MAX)]

#: RFC 3339 with a zone, upper case, seconds required, no leap second (Python has none), in
#: the years 2000-2099 as written: arithmetic on it never overflows, InfluxDB (1677-2262) can
#: store it, and the pattern alone says it; ``validate.check`` narrows ``ts`` to around now.
TS_PATTERN: Final = (
    r"^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
_TS = re.compile(TS_PATTERN)
_TS_NO_ZONE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.]+")
TS_YEARS: Final = range(2000, 2100)


def format_ts(ts: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, as DESIGN.md fixes it."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _timestamp(value: object) -> datetime:
    """One parser for every timestamp, so the published pattern is exactly what passes."""
    if isinstance(value, str):
        if not _TS.fullmatch(value):
            year = value[:4]
            if year.isdigit() and year.isascii() and not value.startswith("20"):
                value = "2000" + value[4:]  # to tell too old or ahead from malformed below
                reason, bound = (
                    ("ts_too_old", "before") if year < "2000" else ("ts_future", "after")
                )
                if _TS.fullmatch(value):
                    raise PydanticCustomError(reason, f"lies {bound} the years 2000-2099")
            if _TS_NO_ZONE.fullmatch(value):
                raise PydanticCustomError(
                    "ts_no_zone", "must carry a time zone, e.g. 2026-11-22T11:00:00.000Z"
                )
            raise PydanticCustomError(
                "ts_format", "must be RFC 3339 with a zone, e.g. 2026-11-22T11:00:00.000Z"
            )
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:  # 31 February
            raise PydanticCustomError(
                "ts_format", "is no date: {error}", {"error": str(exc)}
            ) from exc
    if not isinstance(value, datetime):
        raise PydanticCustomError("ts_format", "must be an RFC 3339 string or a datetime")
    if value.utcoffset() is None:
        raise PydanticCustomError(
            "ts_no_zone", "must carry a time zone, e.g. 2026-11-22T11:00:00.000Z"
        )
    # the year as written, before any conversion: 0001-01-01T00:00:00+01:00 overflowed there
    if value.year < TS_YEARS.start:
        raise PydanticCustomError("ts_too_old", "lies before the year {y}", {"y": TS_YEARS.start})
    if value.year >= TS_YEARS.stop:
        raise PydanticCustomError("ts_future", "lies after the year {y}", {"y": TS_YEARS.stop - 1})
    utc = value.astimezone(UTC)
    # the wire carries milliseconds: hold no more, so a round trip is exact
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


Timestamp = Annotated[
    datetime,
    PlainValidator(_timestamp),
    PlainSerializer(format_ts, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": TS_PATTERN,
            "description": "RFC 3339 with a time zone, 2000-2099; sent in UTC with ms",
        }
    ),
]

#: ``parse_envelope`` passes this context key: the list the unknown names go to.
_UNKNOWN: Final = "unknown"


def _range(bounds: tuple[float, float]) -> Any:  # noqa: ANN401 - a pydantic Field
    return Field(default=None, ge=bounds[0], le=bounds[1])


class _Wire(BaseModel):
    """Strict when built, lenient when read: see the module's docstring."""

    # defer_build: a gateway validates a handful of kinds; building every schema at import
    # would cost it megabytes of RSS on a Pi for models it never touches. extra="allow" only
    # so that unknown fields reach ``_unknown`` below, which refuses or drops them.
    model_config = ConfigDict(frozen=True, extra="allow", allow_inf_nan=False, defer_build=True)
    #: How an unknown name in this model is reported: ``data.`` + name.
    wire_path: ClassVar[str] = "data."

    @model_validator(mode="after")
    def _unknown(self, info: ValidationInfo) -> Self:
        extra = self.__pydantic_extra__
        if extra:
            seen = info.context.get(_UNKNOWN) if isinstance(info.context, dict) else None
            if seen is None:  # built in Python: a typo, never a newer sender
                names = ", ".join(sorted(extra))
                raise ValueError(f"unknown field(s) {names}: remove or add to gateway/models.py")
            seen.extend(self.wire_path + name for name in extra)
            extra.clear()  # ignored: equal to the same message without them
        return self


class _Data(_Wire):
    """Payload data: unknown keys are a typo when built, a newer sender's when read."""


class StatusData(_Data):
    online: bool
    version: str | None = Field(default=None, max_length=64)
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
    #: The room's occupied state when the reading was taken (the agent knows both), so the
    #: central side can tell stuffy air in use from stuffy air in an empty room; None: unknown
    #: (no occupancy source, or an older gateway).
    occupied: bool | None = None


class WifiData(_Data):
    #: a tag: 32 bytes in 802.11, more when the agent escapes bytes that are no UTF-8
    ssid: str | None = Field(default=None, max_length=128)
    bssid: str | None = Field(default=None, max_length=64)
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
    wire_path: ClassVar[str] = "data.slots."

    slot: Id
    present: bool
    charging: bool | None = None


class LockerData(_Data):
    door_open: bool
    slots: list[SlotState]


#: Known event types. The wire takes any name (DESIGN.md "Compatibility": a new event type is
#: additive); ``EventData`` built in Python takes only these, and an unknown one is reported.
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


EVENT_TYPES: Final[frozenset[str]] = frozenset(get_args(EventType))


class EventData(_Data):
    type: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
    locker: Id | None = None
    slot: Id | None = None
    #: Keyed hash of a badge ID (see ``gateway.agent.sources.badge``), never the ID itself.
    borrower: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16,64}$")] | None = None
    due: Timestamp | None = None
    detail: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _known_type(self, info: ValidationInfo) -> Self:
        if self.type not in EVENT_TYPES:
            seen = info.context.get(_UNKNOWN) if isinstance(info.context, dict) else None
            if seen is None:
                raise ValueError(f"unknown event type {self.type!r}; known: {sorted(EVENT_TYPES)}")
            seen.append(f"data.type={self.type}")
        return self


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


class _EnvelopeBase(_Wire):
    wire_path: ClassVar[str] = ""

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


def parse_envelope(payload: bytes | bytearray | str, unknown: list[str] | None = None) -> Envelope:
    """Read a payload from the wire; raises pydantic's ``ValidationError`` naming the bad field.

    Fields this side does not know are dropped and their names (``extra``, ``data.extra``,
    ``data.slots.extra``, ``data.type=<new type>``) appended to ``unknown``. JSON types are
    taken strictly (``"5"`` is no integer), so the published schema says exactly what passes.
    """
    context = {_UNKNOWN: [] if unknown is None else unknown}
    return envelope_adapter().validate_json(payload, strict=True, context=context)


def envelope_json_schema() -> dict[str, Any]:
    """JSON Schema of the envelope for third parties (``learnroom schema``).

    Validation mode, so it describes what the central side accepts (``v`` may be left out).
    Objects allow further properties: a newer gateway may add fields (DESIGN.md
    "Compatibility"), and a reader must ignore them.
    """
    schema = envelope_adapter().json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://learnroom.example/schema/envelope-v1.json"
    schema["title"] = "learnroom MQTT envelope v1"
    _exact_patterns(schema)
    schema["description"] = (
        "One MQTT payload. Readers keep the fields they know and ignore the rest; numbers "
        "are JSON numbers (integers within int64, floats finite), strings are JSON strings."
    )
    return schema


def _exact_patterns(node: object) -> None:
    """Python's ``re.search`` (the ``jsonschema`` package's) lets "$" match before a final
    newline; ECMA 262 and Rust do not. ``(?!\\n)$`` means the end of the text in all three."""
    if isinstance(node, dict):
        pattern = node.get("pattern")
        if isinstance(pattern, str) and pattern.endswith("$"):
            node["pattern"] = pattern[:-1] + r"(?!\n)$"
        for value in node.values():
            _exact_patterns(value)
    elif isinstance(node, list):
        for value in node:
            _exact_patterns(value)
