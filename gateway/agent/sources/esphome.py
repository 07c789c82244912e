"""What ESPHome nodes send, read into the room's readings (the satellites' map).

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

Nodes are learnt from discovery only: the state topics are whatever discovery names, never
guessed. A state can arrive before the discovery of its entity (retained messages of
different topics come in no fixed order), so unclaimed states are kept until it does.

Mapping (overridable per node and entity with ``nodes``; see ``Target``):

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

Several environment nodes are averaged; several door counters are summed (a person may come in
at one door and leave at the other). A node that says ``offline`` or sends nothing live for
``silent_after_s`` is left out of the readings (its locker is not reported: a stale door state
is not the present) and listed by ``faults()`` as ``satellite:<node>``. Retained messages say
what a node last reported, not that it is alive, so only live messages count as "seen".

Malformed discovery or state payloads are refused, counted per reason in ``rejected`` and
logged once per reason; nothing a node sends stops the source.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final, TypeGuard
from zoneinfo import ZoneInfo

import aiomqtt

from gateway import const
from gateway.agent.config import ENV_FIELDS, EnvField, NodeOverride, SatellitesSection
from gateway.clock import Clock
from gateway.models import EnvironmentData, LockerData, OccupancyData, SlotState

__all__ = ["SatelliteMap"]

_LOGGER = logging.getLogger(__name__)

# -- what ESPHome sends (see the module docstring for the source files) ----------------------
#: Home Assistant discovery abbreviations ESPHome uses for the keys read here (mqtt_const.h).
_ABBREVIATIONS: Final = {
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
_DEVICE_ABBREVIATIONS: Final = {
    "ids": "identifiers",
    "mf": "manufacturer",
    "mdl": "model",
    "sw": "sw_version",
    "cns": "connections",
    "sa": "suggested_area",
}
_ONLINE, _OFFLINE = "online", "offline"
_ON, _OFF = "ON", "OFF"
#: What a sensor without a reading sends: "None" with publish_nan_as_none, else printf's "nan".
_NO_VALUE: Final = frozenset({"none", "nan", "-nan", "inf", "-inf", "unknown", "unavailable"})
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
#: ESPHome sanitizes node names and object ids to these characters (helpers.cpp str_sanitize).
_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_MAX_STATE_BYTES: Final = 256
_MAX_DISCOVERY_BYTES: Final = 16 * 1024
#: States kept while waiting for the discovery of their entity.
_MAX_PENDING: Final = 2000

# -- what the source knows about the nodes ------------------------------------------------------
_RANGES: Final[dict[str, tuple[float, float]]] = {
    "co2_ppm": const.CO2_RANGE_PPM,
    "temperature_c": const.TEMPERATURE_RANGE_C,
    "humidity_pct": const.HUMIDITY_RANGE_PCT,
    "noise_dba": const.NOISE_RANGE_DBA,
    "illuminance_lux": const.ILLUMINANCE_RANGE_LUX,
}
#: Units each field accepts, with the conversion into the field's own unit.
_UNITS: Final[dict[str, dict[str, Callable[[float], float]]]] = {
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
_DEVICE_CLASS_FIELD: Final[dict[str, EnvField]] = {
    "carbon_dioxide": "co2_ppm",
    "temperature": "temperature_c",
    "humidity": "humidity_pct",
    "sound_pressure": "noise_dba",
    "illuminance": "illuminance_lux",
}
_SLOT = re.compile(r"slot_(?P<slot>[A-Za-z0-9_-]{1,32})")
_CHARGING = re.compile(r"charging_(?P<slot>[A-Za-z0-9_-]{1,32})")


@dataclass
class _Entity:
    node: str
    component: str
    object_id: str
    state_topic: str
    target: str | None
    convert: Callable[[float], float] = float
    payload_on: str = _ON
    payload_off: str = _OFF
    #: float for sensors, bool for binary sensors; None until a state came (or "no value")
    value: float | bool | None = None


@dataclass
class _Node:
    name: str
    availability_topic: str | None
    first_known: float
    model: str | None = None
    payload_available: str = _ONLINE
    payload_not_available: str = _OFFLINE
    online: bool | None = None
    last_seen: float | None = None  # monotonic time of the last live (non-retained) message
    uptime: float | None = None
    restarts: int = 0
    entities: dict[tuple[str, str], _Entity] = field(default_factory=dict)


@dataclass
class _Counts:
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


def _expand(raw: dict[str, Any]) -> dict[str, Any]:
    """Discovery JSON with Home Assistant's abbreviations and ``~`` base topic expanded."""
    out = {_ABBREVIATIONS.get(k, k): v for k, v in raw.items()}
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
        out["device"] = {_DEVICE_ABBREVIATIONS.get(k, k): v for k, v in device.items()}
    avail = out.get("availability")
    if "availability_topic" not in out and isinstance(avail, list) and avail:
        first = avail[0]
        if isinstance(first, dict):
            first = {_ABBREVIATIONS.get(k, k): v for k, v in first.items()}
            out["availability_topic"] = first.get("topic")
            for key in ("payload_available", "payload_not_available"):
                if key in first:
                    out[key] = first[key]
    return out


class _Refused(ValueError):  # noqa: N818 - a reason to count, not a failure of ours
    """A message that cannot be used; ``reason`` is the counter's key."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(detail)


class SatelliteMap:
    """Everything learnt from the nodes' messages, without any I/O (so it can be unit-tested).

    ``handle`` takes one MQTT message; the reading methods say what the room looks like now.
    """

    def __init__(
        self, config: SatellitesSection, clock: Clock, capacity: int, tz: ZoneInfo
    ) -> None:
        self.config = config
        self.clock = clock
        self.capacity = capacity
        self.tz = tz
        self.nodes: dict[str, _Node] = {}
        #: refused messages per reason, e.g. ``{"sensor-not-a-number": 2}``
        self.rejected: Counter[str] = Counter()
        self._by_state: dict[str, list[_Entity]] = {}
        self._by_status: dict[str, _Node] = {}
        self._pending: dict[str, tuple[bytes, bool]] = {}
        self._counts: dict[str, _Counts] = {}
        self._people_offset = 0.0
        # imported here, not at the top: gateway.config imports SatellitesSection from this
        # module, and occupancy.py (like link.py) imports gateway.config
        from gateway.agent.sources.occupancy import PresenceHold  # noqa: PLC0415

        self._hold = PresenceHold(config.hold_time_s)
        self._last_reset: date | None = None
        self._people_known = False
        self._discovery = re.compile(
            re.escape(config.discovery_prefix)
            + r"/(?P<component>[^/]+)/(?P<node>[^/]+)/(?P<object_id>[^/]+)/config"
        )

    # -- messages --------------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes, retained: bool) -> list[str]:
        """Take one message; return topics to subscribe to in addition (rare). Never raises."""
        try:
            match = self._discovery.fullmatch(topic)
            if match is not None:
                return self._on_discovery(match, payload)
            self._on_state(topic, payload, retained)
        except _Refused as exc:
            self._refuse(exc.reason, topic, str(exc), payload)
        return []

    def _refuse(self, reason: str, topic: str, detail: str, payload: bytes) -> None:
        self.rejected[reason] += 1
        level = logging.WARNING if self.rejected[reason] == 1 else logging.DEBUG
        _LOGGER.log(
            level,
            "satellite message on %s refused (%s): %s; payload %r%s",
            topic,
            reason,
            detail,
            payload[:80],
            "" if level == logging.DEBUG else " (further ones of this kind are only counted)",
        )

    def _on_discovery(self, match: re.Match[str], payload: bytes) -> list[str]:
        component, node_name, object_id = match["component"], match["node"], match["object_id"]
        if not _ID.fullmatch(node_name) or not _ID.fullmatch(object_id):
            raise _Refused("discovery-topic", "node or object id outside [A-Za-z0-9_-]")
        override = self.config.nodes.get(node_name)
        if override is not None and override.ignore:
            return []
        if not payload:
            self._forget(node_name, component, object_id)
            return []
        if len(payload) > _MAX_DISCOVERY_BYTES:
            raise _Refused("discovery-too-large", f"{len(payload)} bytes")
        try:
            raw = json.loads(payload)
        except (UnicodeDecodeError, ValueError) as exc:
            raise _Refused("discovery-not-json", str(exc)) from None
        if not isinstance(raw, dict):
            raise _Refused("discovery-not-json", "not a JSON object")
        meta = _expand(raw)
        state_topic = meta.get("state_topic")
        if not _is_topic(state_topic):
            raise _Refused("discovery-no-state-topic", "state_topic missing or not a topic")
        avail = meta.get("availability_topic")
        if avail is not None and not _is_topic(avail):
            raise _Refused("discovery-bad-field", "availability_topic is not a topic")
        target, convert = self._classify(component, object_id, meta, override)
        entity = _Entity(node_name, component, object_id, state_topic, target, convert)
        for key, attr in (("payload_on", "payload_on"), ("payload_off", "payload_off")):
            if isinstance(meta.get(key), str):
                setattr(entity, attr, meta[key])

        node = self._node_for(node_name, meta, avail)
        extra = [node.availability_topic] if node.availability_topic else []

        old = node.entities.get((component, object_id))
        if old is not None:
            self._unindex(old)
            entity.value = old.value if old.state_topic == state_topic else None
        node.entities[(component, object_id)] = entity
        self._by_state.setdefault(state_topic, []).append(entity)
        extra.append(state_topic)
        # states that came before this discovery; a bad one is refused like any other
        for topic in (node.availability_topic, state_topic):
            pending = self._pending.pop(topic, None) if topic else None
            if topic and pending is not None:
                try:
                    self._on_state(topic, *pending)
                except _Refused as exc:
                    self._refuse(exc.reason, topic, str(exc), pending[0])
        return [t for t in extra if not aiomqtt.Topic(t).matches(self.config.topic_filter)]

    def _node_for(self, node_name: str, meta: dict[str, Any], avail: str | None) -> _Node:
        """The node a discovery message belongs to, created or updated from it."""
        node = self.nodes.get(node_name)
        if node is None:
            node = _Node(node_name, avail, first_known=self.clock.monotonic())
            self.nodes[node_name] = node
            _LOGGER.info("satellite %s discovered", node_name)
        device = meta.get("device")
        if isinstance(device, dict) and isinstance(device.get("model"), str):
            node.model = device["model"]
        if avail and avail != node.availability_topic:
            if node.availability_topic is not None:
                self._by_status.pop(node.availability_topic, None)
            node.availability_topic = avail
        for key in ("payload_available", "payload_not_available"):
            if isinstance(meta.get(key), str):
                setattr(node, key, meta[key])
        if node.availability_topic:
            self._by_status[node.availability_topic] = node
        return node

    def _classify(
        self,
        component: str,
        object_id: str,
        meta: dict[str, Any],
        override: NodeOverride | None,
    ) -> tuple[str | None, Callable[[float], float]]:
        """The target of an entity and how to convert its value; see the module docstring."""
        unit = meta.get("unit_of_measurement")
        target: str | None = override.entities.get(object_id) if override else None
        if target is None:
            target = self._auto_target(component, object_id, meta)
        if target is None or target == "ignore":
            return None, float
        sensor_targets = {*ENV_FIELDS, "people", "people_in", "people_out", "uptime"}
        if (target in sensor_targets) != (component == "sensor"):
            raise _Refused(
                "discovery-wrong-component", f"{component} {object_id} cannot feed {target}"
            )
        if target in _UNITS:
            units = _UNITS[target]
            if unit is None and override is not None and object_id in override.entities:
                return target, float  # mapped by hand: the room says the unit is right
            if unit not in units:
                raise _Refused(
                    "discovery-unit",
                    f"{object_id}: {target} needs one of {', '.join(units)}, not {unit!r}",
                )
            return target, units[unit]
        return target, float

    @staticmethod
    def _auto_target(component: str, object_id: str, meta: dict[str, Any]) -> str | None:
        device_class = meta.get("device_class")
        if component == "sensor":
            if isinstance(device_class, str) and device_class in _DEVICE_CLASS_FIELD:
                return _DEVICE_CLASS_FIELD[device_class]
            if object_id in ("people_in", "people_out", "uptime"):
                return object_id
            if object_id in ("people", "people_count"):
                return "people"
            return None
        if component == "binary_sensor":
            if m := _SLOT.fullmatch(object_id):
                return f"slot:{m['slot']}"
            if m := _CHARGING.fullmatch(object_id):
                return f"charging:{m['slot']}"
            if device_class == "door" or object_id == "door":
                return "door"
            if device_class == "problem":
                return "problem"
        return None

    def _unindex(self, entity: _Entity) -> None:
        listed = self._by_state.get(entity.state_topic, [])
        if entity in listed:
            listed.remove(entity)
        if not listed:
            self._by_state.pop(entity.state_topic, None)

    def _forget(self, node_name: str, component: str, object_id: str) -> None:
        node = self.nodes.get(node_name)
        if node is None:
            return
        entity = node.entities.pop((component, object_id), None)
        if entity is not None:
            self._unindex(entity)
        if not node.entities:
            if node.availability_topic:
                self._by_status.pop(node.availability_topic, None)
            self._counts.pop(node_name, None)
            del self.nodes[node_name]
            _LOGGER.info("satellite %s removed (its discovery messages were cleared)", node_name)

    def _on_state(self, topic: str, payload: bytes, retained: bool) -> None:
        node = self._by_status.get(topic)
        if node is not None:
            self._on_status(node, payload, retained)
            return
        entities = self._by_state.get(topic)
        if not entities:
            # perhaps a state whose discovery comes later: keep the newest, boundedly
            if len(self._pending) < _MAX_PENDING or topic in self._pending:
                self._pending[topic] = (payload, retained)
            else:
                self.rejected["unclaimed-overflow"] += 1
            return
        if len(payload) > _MAX_STATE_BYTES:
            raise _Refused("state-too-large", f"{len(payload)} bytes")
        try:
            text = payload.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise _Refused("state-not-text", "not UTF-8") from None
        for entity in entities:
            self._set(entity, text)
        if not retained:
            self._seen(self.nodes[entities[0].node])

    def _seen(self, node: _Node) -> None:
        node.last_seen = self.clock.monotonic()

    def _on_status(self, node: _Node, payload: bytes, retained: bool) -> None:
        text = payload.decode("utf-8", "replace").strip()
        if text == node.payload_available:
            online = True
        elif text == node.payload_not_available:
            online = False
        else:
            raise _Refused(
                "status-payload",
                f"expected {node.payload_available!r} or {node.payload_not_available!r}",
            )
        if online != node.online:
            _LOGGER.info("satellite %s is %s", node.name, "online" if online else "offline")
        node.online = online
        if not retained:
            self._seen(node)

    def _set(self, entity: _Entity, text: str) -> None:
        if entity.target is None:
            return  # known, not mapped: it still shows the node alive
        if entity.component == "binary_sensor":
            if text == entity.payload_on:
                entity.value = True
            elif text == entity.payload_off:
                entity.value = False
            else:
                raise _Refused(
                    "binary-payload",
                    f"{entity.node}/{entity.object_id}: expected "
                    f"{entity.payload_on!r} or {entity.payload_off!r}",
                )
            return
        if text.lower() in _NO_VALUE:
            entity.value = None  # the sensor has no reading: null, not a fault of the message
            return
        if not _NUMBER.fullmatch(text):
            raise _Refused("sensor-not-a-number", f"{entity.node}/{entity.object_id}")
        value = entity.convert(float(text))
        if not math.isfinite(value):
            entity.value = None
            return
        target = entity.target
        if target in _RANGES:
            low, high = _RANGES[target]
            if not low <= value <= high:
                entity.value = None
                raise _Refused(
                    "sensor-out-of-range",
                    f"{entity.node}/{entity.object_id}: {value:g} outside {low:g}..{high:g}",
                )
        elif target in ("people", "people_in", "people_out", "uptime") and value < 0:
            raise _Refused(
                "sensor-out-of-range", f"{entity.node}/{entity.object_id}: {value:g} < 0"
            )
        if target == "uptime":
            node = self.nodes[entity.node]
            if node.uptime is not None and value < node.uptime:
                node.restarts += 1
                _LOGGER.info("satellite %s restarted (uptime %g s)", node.name, value)
            node.uptime = value
        elif target in ("people_in", "people_out"):
            self._counts.setdefault(entity.node, _Counts()).feed(target, value)
        entity.value = value

    # -- state of the nodes ---------------------------------------------------------------------
    def is_up(self, node: _Node) -> bool:
        """Online (or never said otherwise) and heard live within ``silent_after_s``."""
        if node.online is False:
            return False
        since = node.last_seen if node.last_seen is not None else node.first_known
        return self.clock.monotonic() - since < self.config.silent_after_s

    def next_silence_in(self) -> float | None:
        """Seconds until the next node that is up now would turn silent."""
        now = self.clock.monotonic()
        waits = [
            (n.last_seen if n.last_seen is not None else n.first_known)
            + self.config.silent_after_s
            - now
            for n in self.nodes.values()
            if self.is_up(n)
        ]
        return max(0.0, min(waits)) if waits else None

    def faults(self) -> list[str]:
        """``satellite:<node>`` per offline or silent node; ``satellite:<node>:<object>`` per
        problem sensor that is ON (a blocked beam)."""
        out = []
        for node in self.nodes.values():
            if not self.is_up(node):
                out.append(f"satellite:{node.name}")
                continue
            out += [
                f"satellite:{node.name}:{e.object_id}"
                for e in node.entities.values()
                if e.target == "problem" and e.value is True
            ]
        return sorted(out)

    def problems(self) -> str | None:
        """One line for ``Sink.fault``: which nodes are down and why."""
        parts = []
        now = self.clock.monotonic()
        for node in sorted(self.nodes.values(), key=lambda n: n.name):
            if node.online is False:
                parts.append(f"{node.name} offline")
            elif not self.is_up(node):
                since = node.last_seen if node.last_seen is not None else node.first_known
                parts.append(f"{node.name} silent for {now - since:.0f} s")
        return "; ".join(parts) or None

    def _entities(self, prefix: str) -> Iterable[tuple[_Node, _Entity]]:
        for node in self.nodes.values():
            for entity in node.entities.values():
                if entity.target is not None and entity.target.startswith(prefix):
                    yield node, entity

    # -- readings ---------------------------------------------------------------------------------
    def environment(self) -> EnvironmentData | None:
        """The mean of each field over the nodes that are up; None with no environment node."""
        values: dict[str, list[float]] = {f: [] for f in ENV_FIELDS}
        fitted = False
        ok = True
        for node, entity in self._entities(""):
            if entity.target not in values:
                continue
            fitted = True
            if not self.is_up(node):
                ok = False
            elif isinstance(entity.value, float):
                values[entity.target].append(entity.value)
        if not fitted:
            return None
        return EnvironmentData(
            **{k: round(sum(v) / len(v), 2) if v else None for k, v in values.items()},
            sensor_ok=ok,
        )

    def lockers(self) -> dict[str, LockerData]:
        """Per locker node that is up: its door and the slots whose state is known."""
        out: dict[str, LockerData] = {}
        for node in self.nodes.values():
            slots: dict[str, dict[str, bool | None]] = {}
            door: bool | None = None
            has_door = False
            for entity in node.entities.values():
                kind, _, slot = (entity.target or "").partition(":")
                if kind in ("slot", "charging"):
                    state = slots.setdefault(slot, {"present": None, "charging": None})
                    state["present" if kind == "slot" else "charging"] = (
                        entity.value if isinstance(entity.value, bool) else None
                    )
                elif kind == "door":
                    has_door = True
                    door = entity.value if isinstance(entity.value, bool) else None
            if not slots or not self.is_up(node) or (has_door and door is None):
                continue
            known = [
                SlotState(slot=s, present=v["present"], charging=v["charging"])
                for s, v in sorted(slots.items(), key=lambda kv: _natural(kv[0]))
                if v["present"] is not None
            ]
            if not known:
                continue
            override = self.config.nodes.get(node.name)
            locker = override.locker if override and override.locker else node.name
            out[locker] = LockerData(door_open=bool(door), slots=known)
        return out

    def occupancy(self) -> OccupancyData | None:
        """People from the door counters (or a node's own count); None with no counter."""
        counters = [(n, e) for n, e in self._entities("people")]
        if not counters:
            return None
        people: int | None
        if any(not self.is_up(n) for n, _ in counters):
            people = None  # a door we cannot see: the count would be a guess
        else:
            direct = [e.value for _, e in counters if e.target == "people"]
            if direct:
                people = (
                    None
                    if any(not isinstance(v, float) for v in direct)
                    else int(sum(v for v in direct if isinstance(v, float)))
                )
            else:
                people = self._counted()
        now = self.clock.monotonic()
        self._people_known = people is not None
        occupied = (
            self._hold.update(bool(people), now) if people is not None else self._hold.occupied
        )
        return OccupancyData(people=people, occupied=occupied, capacity=self.capacity)

    def _counted(self) -> int | None:
        counts = list(self._counts.values())
        if not counts or any(c.last_in is None or c.last_out is None for c in counts):
            return None  # one of the pair not yet seen: in - out would be wrong
        raw = sum(c.total_in - c.total_out for c in counts) - self._people_offset
        if raw < 0:
            # people left whom no counter saw come in: stay at zero, count later entries
            self._people_offset += raw
            raw = 0
        return round(raw)

    def maybe_reset(self) -> bool:
        """At ``reset_hour`` once a day, start the door count from zero again."""
        if self.config.reset_hour is None or not self._counts:
            return False
        local = self.clock.now().astimezone(self.tz)
        if local.hour != self.config.reset_hour or self._last_reset == local.date():
            return False
        self._last_reset = local.date()
        self._people_offset = sum(c.total_in - c.total_out for c in self._counts.values())
        return True

    def hold_remaining(self) -> float | None:
        """Seconds until the room would turn free; None while the count is unknown, since
        the hold only moves on a known count (waking for it then would spin)."""
        if not self._people_known:
            return None
        return self._hold.seconds_to_free(self.clock.monotonic())


def _is_topic(value: object) -> TypeGuard[str]:
    """A topic one can subscribe to exactly: a non-empty string without wildcards."""
    return (
        isinstance(value, str)
        and 0 < len(value.encode()) <= 65535
        and not any(c in value for c in "+#\0")
    )


def _natural(slot: str) -> tuple[int, int | str]:
    return (0, int(slot)) if slot.isdigit() else (1, slot)
