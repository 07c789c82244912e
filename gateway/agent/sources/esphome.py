"""What ESPHome nodes send, read into the room's readings (the satellites' map).

ESP32 nodes (firmware_configs/) publish over ESPHome's MQTT component to the broker on the Pi;
what they send, and where in ESPHome that is written, is in ``esphome_protocol``.

Nodes are learnt from discovery only: the state topics are whatever discovery names, never
guessed. A state can arrive before the discovery of its entity (retained messages of
different topics come in no fixed order), so unclaimed states are kept until it does.

Which entity feeds which reading (overridable per node and entity with ``nodes``; see
``Target``) is in ``esphome_protocol`` too.

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
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt

from gateway.agent.config import ENV_FIELDS, NodeOverride, SatellitesSection
from gateway.agent.sources.esphome_protocol import (
    ID,
    MAX_DISCOVERY_BYTES,
    MAX_PENDING,
    MAX_STATE_BYTES,
    NO_VALUE,
    NUMBER,
    RANGES,
    UNITS,
    Counts,
    Entity,
    Node,
    Refused,
    auto_target,
    expand,
    is_topic,
    natural,
)
from gateway.clock import Clock
from gateway.models import EnvironmentData, LockerData, OccupancyData, SlotState

__all__ = ["SatelliteMap"]

_LOGGER = logging.getLogger(__name__)


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
        self.nodes: dict[str, Node] = {}
        #: refused messages per reason, e.g. ``{"sensor-not-a-number": 2}``
        self.rejected: Counter[str] = Counter()
        self._by_state: dict[str, list[Entity]] = {}
        self._by_status: dict[str, Node] = {}
        self._pending: dict[str, tuple[bytes, bool]] = {}
        self._counts: dict[str, Counts] = {}
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
        except Refused as exc:
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
        if not ID.fullmatch(node_name) or not ID.fullmatch(object_id):
            raise Refused("discovery-topic", "node or object id outside [A-Za-z0-9_-]")
        override = self.config.nodes.get(node_name)
        if override is not None and override.ignore:
            return []
        if not payload:
            self._forget(node_name, component, object_id)
            return []
        if len(payload) > MAX_DISCOVERY_BYTES:
            raise Refused("discovery-too-large", f"{len(payload)} bytes")
        try:
            raw = json.loads(payload)
        except (UnicodeDecodeError, ValueError) as exc:
            raise Refused("discovery-not-json", str(exc)) from None
        if not isinstance(raw, dict):
            raise Refused("discovery-not-json", "not a JSON object")
        meta = expand(raw)
        state_topic = meta.get("state_topic")
        if not is_topic(state_topic):
            raise Refused("discovery-no-state-topic", "state_topic missing or not a topic")
        avail = meta.get("availability_topic")
        if avail is not None and not is_topic(avail):
            raise Refused("discovery-bad-field", "availability_topic is not a topic")
        target, convert = self._classify(component, object_id, meta, override)
        entity = Entity(node_name, component, object_id, state_topic, target, convert)
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
                except Refused as exc:
                    self._refuse(exc.reason, topic, str(exc), pending[0])
        return [t for t in extra if not aiomqtt.Topic(t).matches(self.config.topic_filter)]

    def _node_for(self, node_name: str, meta: dict[str, Any], avail: str | None) -> Node:
        """The node a discovery message belongs to, created or updated from it."""
        node = self.nodes.get(node_name)
        if node is None:
            node = Node(node_name, avail, first_known=self.clock.monotonic())
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
            target = auto_target(component, object_id, meta)
        if target is None or target == "ignore":
            return None, float
        sensor_targets = {*ENV_FIELDS, "people", "people_in", "people_out", "uptime"}
        if (target in sensor_targets) != (component == "sensor"):
            raise Refused(
                "discovery-wrong-component", f"{component} {object_id} cannot feed {target}"
            )
        if target in UNITS:
            units = UNITS[target]
            if unit is None and override is not None and object_id in override.entities:
                return target, float  # mapped by hand: the room says the unit is right
            if unit not in units:
                raise Refused(
                    "discovery-unit",
                    f"{object_id}: {target} needs one of {', '.join(units)}, not {unit!r}",
                )
            return target, units[unit]
        return target, float

    def _unindex(self, entity: Entity) -> None:
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
            if len(self._pending) < MAX_PENDING or topic in self._pending:
                self._pending[topic] = (payload, retained)
            else:
                self.rejected["unclaimed-overflow"] += 1
            return
        if len(payload) > MAX_STATE_BYTES:
            raise Refused("state-too-large", f"{len(payload)} bytes")
        try:
            text = payload.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise Refused("state-not-text", "not UTF-8") from None
        for entity in entities:
            self._set(entity, text)
        if not retained:
            self._seen(self.nodes[entities[0].node])

    def _seen(self, node: Node) -> None:
        node.last_seen = self.clock.monotonic()

    def _on_status(self, node: Node, payload: bytes, retained: bool) -> None:
        text = payload.decode("utf-8", "replace").strip()
        if text == node.payload_available:
            online = True
        elif text == node.payload_not_available:
            online = False
        else:
            raise Refused(
                "status-payload",
                f"expected {node.payload_available!r} or {node.payload_not_available!r}",
            )
        if online != node.online:
            _LOGGER.info("satellite %s is %s", node.name, "online" if online else "offline")
        node.online = online
        if not retained:
            self._seen(node)

    def _set(self, entity: Entity, text: str) -> None:
        if entity.target is None:
            return  # known, not mapped: it still shows the node alive
        if entity.component == "binary_sensor":
            if text == entity.payload_on:
                entity.value = True
            elif text == entity.payload_off:
                entity.value = False
            else:
                raise Refused(
                    "binary-payload",
                    f"{entity.node}/{entity.object_id}: expected "
                    f"{entity.payload_on!r} or {entity.payload_off!r}",
                )
            return
        if text.lower() in NO_VALUE:
            entity.value = None  # the sensor has no reading: null, not a fault of the message
            return
        if not NUMBER.fullmatch(text):
            raise Refused("sensor-not-a-number", f"{entity.node}/{entity.object_id}")
        value = entity.convert(float(text))
        if not math.isfinite(value):
            entity.value = None
            return
        target = entity.target
        if target in RANGES:
            low, high = RANGES[target]
            if not low <= value <= high:
                entity.value = None
                raise Refused(
                    "sensor-out-of-range",
                    f"{entity.node}/{entity.object_id}: {value:g} outside {low:g}..{high:g}",
                )
        elif target in ("people", "people_in", "people_out", "uptime") and value < 0:
            raise Refused("sensor-out-of-range", f"{entity.node}/{entity.object_id}: {value:g} < 0")
        if target == "uptime":
            node = self.nodes[entity.node]
            if node.uptime is not None and value < node.uptime:
                node.restarts += 1
                _LOGGER.info("satellite %s restarted (uptime %g s)", node.name, value)
            node.uptime = value
        elif target in ("people_in", "people_out"):
            self._counts.setdefault(entity.node, Counts()).feed(target, value)
        entity.value = value

    # -- state of the nodes ---------------------------------------------------------------------
    def is_up(self, node: Node) -> bool:
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

    def _entities(self, prefix: str) -> Iterable[tuple[Node, Entity]]:
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
                for s, v in sorted(slots.items(), key=lambda kv: natural(kv[0]))
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
