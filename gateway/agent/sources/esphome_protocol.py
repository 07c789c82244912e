"""What ESPHome nodes send over MQTT, and how each entity maps to a reading.

ESP32 nodes (firmware_configs/) publish over ESPHome's MQTT component to the broker on the Pi.
Checked against ESPHome 2026.6.5 (``esphome/components/mqtt/mqtt_component.cpp``,
``mqtt_sensor.cpp``, ``mqtt_binary_sensor.cpp``, ``mqtt_const.h``, ``mqtt/__init__.py``):

- discovery ``<discovery_prefix>/<component>/<node>/<object_id>/config``, retained JSON with
  full keys (``state_topic``, ``device_class``, ``unit_of_measurement``, ``device``...) or, with
  ESPHome's default ``use_abbreviations: true``, short ones (``stat_t``, ``dev_cla``,
  ``unit_of_meas``, ``uniq_id``, ``avty_t``, ``dev`` with ``ids``/``mf``/``mdl``/``sw``/``cns``);
  both are read. ``pl_avail``/``pl_not_avail`` appear only when not ``online``/``offline``.
  An empty retained payload removes the entity.
- state ``<topic_prefix>/<component>/<object_id>/state``, retained, plain text: a sensor sends
  its value with its fixed decimals (``812``, ``21.4``) or ``None``/``nan`` when it has none;
  a binary sensor ``ON``/``OFF``.
- availability ``<topic_prefix>/status``: ``online`` (birth), ``offline`` (Last Will and
  clean shutdown), retained.

Mapping (``auto_target``; a room overrides it per node and entity with ``nodes``, see
``Target``):

- ``sensor`` by ``device_class`` and unit: ``carbon_dioxide`` ppm → ``co2_ppm``;
  ``temperature`` °C/°F/K → ``temperature_c``; ``humidity`` % → ``humidity_pct``;
  ``sound_pressure`` dB/dBA → ``noise_dba``; ``illuminance`` lx → ``illuminance_lux``.
  A known class in an unknown unit is refused: a mis-scaled value is worse than none.
- ``sensor`` by object_id: ``people_in``/``people_out`` (counts since the node booted, only
  growing) → the room's people count; ``people``/``people_count`` → a count as it is;
  ``uptime`` → restart detection.
- ``binary_sensor``: ``slot_<id>`` → slot ``<id>`` present (ON = device in the slot),
  ``charging_<id>`` → slot charging; ``device_class: door`` or object_id ``door`` → the
  locker's ``door_open``, on a node that has slots (that node is one locker, named after the
  node); ``device_class: problem`` ON → a health fault ``satellite:<node>:<object_id>``.

Pure facts and parsing helpers, no state: the satellites' map (``esphome``) keeps the state.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeGuard

from gateway import const
from gateway.agent.config import EnvField

# -- what ESPHome sends (see the module docstring for the source files) ----------------------
#: Home Assistant discovery abbreviations ESPHome uses for the keys read here (mqtt_const.h).
ABBREVIATIONS: Final = {
    "stat_t": "state_topic",
    "dev_cla": "device_class",
    "unit_of_meas": "unit_of_measurement",
    "uniq_id": "unique_id",
    "avty_t": "availability_topic",
    "avty": "availability",
    "pl_avail": "payload_available",
    "pl_not_avail": "payload_not_available",
    "pl_on": "payload_on",
    "pl_off": "payload_off",
    "dev": "device",
    "ent_cat": "entity_category",
    "stat_cla": "state_class",
    "cmd_t": "command_topic",
    "t": "topic",
}
DEVICE_ABBREVIATIONS: Final = {
    "ids": "identifiers",
    "mf": "manufacturer",
    "mdl": "model",
    "sw": "sw_version",
    "cns": "connections",
    "sa": "suggested_area",
}
ONLINE, OFFLINE = "online", "offline"
ON, OFF = "ON", "OFF"
#: What a sensor without a reading sends: "None" with publish_nan_as_none, else printf's "nan".
NO_VALUE: Final = frozenset({"none", "nan", "-nan", "inf", "-inf", "unknown", "unavailable"})
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
#: ESPHome sanitizes node names and object ids to these characters (helpers.cpp str_sanitize).
ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
MAX_STATE_BYTES: Final = 256
MAX_DISCOVERY_BYTES: Final = 16 * 1024
#: States kept while waiting for the discovery of their entity.
MAX_PENDING: Final = 2000

# -- what the source knows about the nodes ------------------------------------------------------
RANGES: Final[dict[str, tuple[float, float]]] = {
    "co2_ppm": const.CO2_RANGE_PPM,
    "temperature_c": const.TEMPERATURE_RANGE_C,
    "humidity_pct": const.HUMIDITY_RANGE_PCT,
    "noise_dba": const.NOISE_RANGE_DBA,
    "illuminance_lux": const.ILLUMINANCE_RANGE_LUX,
}
#: Units each field accepts, with the conversion into the field's own unit.
UNITS: Final[dict[str, dict[str, Callable[[float], float]]]] = {
    "co2_ppm": {"ppm": float},
    "temperature_c": {
        "°C": float,
        "°F": lambda f: (f - 32.0) * 5.0 / 9.0,
        "K": lambda k: k - 273.15,
    },
    "humidity_pct": {"%": float},
    # sound_level's RMS is unweighted dB; dB(A) meters say dBA: both go into noise_dba
    "noise_dba": {"dB": float, "dBA": float, "dB(A)": float},
    "illuminance_lux": {"lx": float},
}
DEVICE_CLASS_FIELD: Final[dict[str, EnvField]] = {
    "carbon_dioxide": "co2_ppm",
    "temperature": "temperature_c",
    "humidity": "humidity_pct",
    "sound_pressure": "noise_dba",
    "illuminance": "illuminance_lux",
}
SLOT = re.compile(r"slot_(?P<slot>[A-Za-z0-9_-]{1,32})")
CHARGING = re.compile(r"charging_(?P<slot>[A-Za-z0-9_-]{1,32})")


@dataclass
class Entity:
    node: str
    component: str
    object_id: str
    state_topic: str
    target: str | None
    convert: Callable[[float], float] = float
    payload_on: str = ON
    payload_off: str = OFF
    #: float for sensors, bool for binary sensors; None until a state came (or "no value")
    value: float | bool | None = None


@dataclass
class Node:
    name: str
    availability_topic: str | None
    first_known: float
    model: str | None = None
    payload_available: str = ONLINE
    payload_not_available: str = OFFLINE
    online: bool | None = None
    last_seen: float | None = None  # monotonic time of the last live (non-retained) message
    uptime: float | None = None
    restarts: int = 0
    entities: dict[tuple[str, str], Entity] = field(default_factory=dict)


@dataclass
class Counts:
    """People counted by one door node: its last totals and what they added up to."""

    last_in: float | None = None
    last_out: float | None = None
    total_in: float = 0.0
    total_out: float = 0.0

    def feed(self, which: str, value: float) -> None:
        last = self.last_in if which == "people_in" else self.last_out
        # the totals only grow; lower than before means the node restarted and counts from 0
        delta = value if last is None or value < last else value - last
        if which == "people_in":
            self.last_in, self.total_in = value, self.total_in + delta
        else:
            self.last_out, self.total_out = value, self.total_out + delta


def expand(raw: dict[str, Any]) -> dict[str, Any]:
    """Discovery JSON with Home Assistant's abbreviations and ``~`` base topic expanded."""
    out = {ABBREVIATIONS.get(k, k): v for k, v in raw.items()}
    base = out.pop("~", None)
    if isinstance(base, str):
        for key, value in list(out.items()):
            if key.endswith("_topic") and isinstance(value, str):
                if value.startswith("~"):
                    out[key] = base + value[1:]
                elif value.endswith("~"):
                    out[key] = value[:-1] + base
    device = out.get("device")
    if isinstance(device, dict):
        out["device"] = {DEVICE_ABBREVIATIONS.get(k, k): v for k, v in device.items()}
    avail = out.get("availability")
    if "availability_topic" not in out and isinstance(avail, list) and avail:
        first = avail[0]
        if isinstance(first, dict):
            first = {ABBREVIATIONS.get(k, k): v for k, v in first.items()}
            out["availability_topic"] = first.get("topic")
            for key in ("payload_available", "payload_not_available"):
                if key in first:
                    out[key] = first[key]
    return out


class Refused(ValueError):  # noqa: N818 - a reason to count, not a failure of ours
    """A message that cannot be used; ``reason`` is the counter's key."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(detail)


def auto_target(component: str, object_id: str, meta: dict[str, Any]) -> str | None:
    """The reading an entity feeds by ESPHome's conventions (see "Mapping" above); None: none."""
    device_class = meta.get("device_class")
    if component == "sensor":
        if isinstance(device_class, str) and device_class in DEVICE_CLASS_FIELD:
            return DEVICE_CLASS_FIELD[device_class]
        if object_id in ("people_in", "people_out", "uptime"):
            return object_id
        if object_id in ("people", "people_count"):
            return "people"
        return None
    if component == "binary_sensor":
        if m := SLOT.fullmatch(object_id):
            return f"slot:{m['slot']}"
        if m := CHARGING.fullmatch(object_id):
            return f"charging:{m['slot']}"
        if device_class == "door" or object_id == "door":
            return "door"
        if device_class == "problem":
            return "problem"
    return None


def is_topic(value: object) -> TypeGuard[str]:
    """A topic one can subscribe to exactly: a non-empty string without wildcards."""
    return (
        isinstance(value, str)
        and 0 < len(value.encode()) <= 65535
        and not any(c in value for c in "+#\0")
    )


def natural(slot: str) -> tuple[int, int | str]:
    """Sort key: slot 2 before slot 10, numbered slots before named ones."""
    return (0, int(slot)) if slot.isdigit() else (1, slot)
