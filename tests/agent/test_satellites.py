"""The satellites source against a real Mosquitto, fed what ESPHome nodes really publish.

``EspNode`` plays an ESPHome 2026.6.5 node with the MQTT settings of firmware_configs/common/
mqtt.yaml: a Last Will, the birth message, then per entity its discovery message followed by
its state, all retained (``mqtt_client.cpp``, ``mqtt_component.cpp``). The discovery JSON has
the keys ``MQTTComponent::send_discovery_`` and ``MQTTSensorComponent::send_discovery`` write,
in full (``use_abbreviations: false``, as our firmware sets) or abbreviated (ESPHome's default),
with ``unique_id`` from the ``mac`` generator (``<mac>-<component>-<fnv1(name)>``) and the
``device`` block that ``project: name: learnroom.<role>`` produces.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from gateway.agent.config import SatellitesSection
from gateway.agent.sources.satellites import SatelliteMap, SatellitesSource
from gateway.clock import RealClock
from gateway.launch.broker import Mosquitto
from gateway.models import EnvironmentData, LockerData, OccupancyData
from tests.sink import Recorder

TZ = ZoneInfo("Europe/Berlin")
ESPHOME_VERSION = "2026.6.5"

#: mqtt_const.h: the abbreviations ESPHome writes with use_abbreviations: true (its default)
ABBREVIATED = {
    "suggested_display_precision": "sug_dsp_prc",
    "unit_of_measurement": "unit_of_meas",
    "state_class": "stat_cla",
    "icon": "ic",
    "device_class": "dev_cla",
    "entity_category": "ent_cat",
    "state_topic": "stat_t",
    "availability_topic": "avty_t",
    "unique_id": "uniq_id",
    "device": "dev",
    "identifiers": "ids",
    "sw_version": "sw",
    "model": "mdl",
    "manufacturer": "mf",
    "connections": "cns",
}


def fnv1(text: str) -> int:
    """esphome/core/helpers.cpp fnv1_hash: FNV-1 (multiply, then xor), 32 bit."""
    value = 2166136261
    for byte in text.encode():
        value = (value * 16777619) & 0xFFFFFFFF
        value ^= byte
    return value


@dataclass(frozen=True)
class Entity:
    component: str  # "sensor" or "binary_sensor"
    name: str  # the entity name; ESPHome derives the object_id from it
    device_class: str | None = None
    unit: str | None = None
    decimals: int | None = None
    state_class: str | None = None
    icon: str | None = None
    diagnostic: bool = False

    @property
    def object_id(self) -> str:
        return self.name.lower().replace(" ", "_")


# What the board files in firmware_configs/ declare (and the ESPHome components' defaults).
UPTIME = Entity(
    "sensor", "Uptime", "duration", "s", 0, "total_increasing", "mdi:timer-outline", True
)
WIFI = Entity("sensor", "WiFi Signal", "signal_strength", "dBm", 0, "measurement", None, True)
CO2 = Entity("sensor", "CO2", "carbon_dioxide", "ppm", 0, "measurement", "mdi:molecule-co2")
TEMPERATURE = Entity(
    "sensor", "Temperature", "temperature", "°C", 2, "measurement", "mdi:thermometer"
)
HUMIDITY = Entity("sensor", "Humidity", "humidity", "%", 2, "measurement", "mdi:water-percent")
SOUND = Entity("sensor", "Sound Level", "sound_pressure", "dB", 1, "measurement")
PEOPLE_IN = Entity(
    "sensor", "People In", None, None, 0, "total_increasing", "mdi:account-arrow-right"
)
PEOPLE_OUT = Entity(
    "sensor", "People Out", None, None, 0, "total_increasing", "mdi:account-arrow-left"
)
BEAM_FAULT = Entity("binary_sensor", "Beam Fault", "problem", diagnostic=True)
DOOR = Entity("binary_sensor", "Door", "door")
SLOTS = [Entity("binary_sensor", f"Slot {n}") for n in range(1, 9)]


class EspNode:
    """One ESPHome node on the broker, publishing as the firmware does."""

    def __init__(
        self,
        port: int,
        name: str,
        role: str,
        entities: list[Entity],
        *,
        abbreviated: bool = False,
        friendly_name: str | None = None,
    ) -> None:
        self.port = port
        self.name = name
        self.role = role
        self.entities = {e.object_id: e for e in entities}
        self.abbreviated = abbreviated
        self.friendly_name = friendly_name or name.replace("-", " ").title()
        self.prefix = f"learnroom-sat/{name}"
        self.mac = uuid.uuid4().hex[:12]
        self.client: mqtt.Client | None = None

    def state_topic(self, object_id: str) -> str:
        return f"{self.prefix}/{self.entities[object_id].component}/{object_id}/state"

    def discovery_topic(self, object_id: str) -> str:
        entity = self.entities[object_id]
        return f"homeassistant/{entity.component}/{self.name}/{object_id}/config"

    def discovery(self, object_id: str) -> dict[str, Any]:
        """The JSON of send_discovery_(), keys in the order ESPHome adds them."""
        e = self.entities[object_id]
        root: dict[str, Any] = {}
        if e.component == "sensor":
            if e.decimals is not None:
                root["suggested_display_precision"] = e.decimals
            if e.unit:
                root["unit_of_measurement"] = e.unit
            if e.state_class:
                root["state_class"] = e.state_class
        root["name"] = e.name
        if e.icon:
            root["icon"] = e.icon
        if e.device_class:
            root["device_class"] = e.device_class
        if e.diagnostic:
            root["entity_category"] = "diagnostic"
        root["state_topic"] = self.state_topic(object_id)
        root["availability_topic"] = f"{self.prefix}/status"
        root["unique_id"] = f"{self.mac}-{e.component}-{fnv1(e.name):08x}"
        root["device"] = {
            "identifiers": self.mac,
            "name": self.friendly_name,
            "sw_version": f"1.0.0 (ESPHome {ESPHOME_VERSION})",
            "model": self.role,
            "manufacturer": "learnroom",
            "connections": [["mac", self.mac]],
        }
        if self.abbreviated:
            root = {ABBREVIATED.get(k, k): v for k, v in root.items()}
            dev = root["dev"]
            root["dev"] = {ABBREVIATED.get(k, k): v for k, v in dev.items()}
        return root

    # -- MQTT ----------------------------------------------------------------------------------
    def connect(self) -> EspNode:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"learnroom-sat-{self.name}")
        client.will_set(f"{self.prefix}/status", "offline", qos=1, retain=True)
        client.connect("127.0.0.1", self.port, keepalive=15)
        client.loop_start()
        self.client = client
        self.publish(f"{self.prefix}/status", "online", qos=1)
        return self

    def publish(
        self, topic: str, payload: str | bytes, *, qos: int = 0, retain: bool = True
    ) -> None:
        assert self.client is not None
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(5)

    def announce(self, states: dict[str, str]) -> None:
        """What a node does after connecting: per entity, discovery then its state."""
        for object_id in self.entities:
            self.publish(self.discovery_topic(object_id), json.dumps(self.discovery(object_id)))
            if object_id in states:
                self.set(object_id, states[object_id])

    def set(self, object_id: str, payload: str) -> None:
        self.publish(self.state_topic(object_id), payload)

    def lose_connection(self) -> None:
        """Power cut or Wi-Fi gone: no DISCONNECT, so the broker sends the Last Will."""
        assert self.client is not None
        self.client.loop_stop()
        sock = self.client.socket()
        assert sock is not None
        sock.close()
        self.client = None

    def go_quiet(self) -> None:
        """Hung firmware: the TCP connection stays, nothing more is published."""
        assert self.client is not None
        self.client.loop_stop()

    def disconnect(self) -> None:
        if self.client is not None:
            self.client.loop_stop()
            self.client.disconnect()
            self.client = None


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture
def nodes() -> Iterator[list[EspNode]]:
    made: list[EspNode] = []
    yield made
    for node in made:
        with contextlib.suppress(Exception):
            node.disconnect()


def node(
    nodes: list[EspNode],
    mosquitto: Mosquitto,
    name: str,
    role: str,
    entities: list[Entity],
    **kw: Any,
) -> EspNode:
    made = EspNode(mosquitto.port, name, role, entities, **kw)
    nodes.append(made)
    return made.connect()


def env_node(nodes: list[EspNode], mosquitto: Mosquitto, name: str = "env-1", **kw: Any) -> EspNode:
    return node(
        nodes, mosquitto, name, "environment-node", [CO2, TEMPERATURE, HUMIDITY, UPTIME, WIFI], **kw
    )


def make_source(mosquitto: Mosquitto, capacity: int = 24, **cfg: Any) -> SatellitesSource:
    config = SatellitesSection(broker=mosquitto.url, **cfg)
    source = SatellitesSource(config, capacity, 0.3, RealClock(), TZ)
    source.min_gap_s = 0.05
    return source


@contextlib.asynccontextmanager
async def running(source: SatellitesSource, sink: Recorder) -> AsyncIterator[None]:
    task = asyncio.create_task(source.run(sink), name="satellites-under-test")
    try:
        await asyncio.wait_for(source.subscribed.wait(), 10)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def env(pred: Any = None) -> Any:
    return lambda d: isinstance(d, EnvironmentData) and (pred is None or pred(d))


# -- environment ------------------------------------------------------------------------------
async def test_environment_node_retained_before_the_gateway_starts(
    mosquitto: Mosquitto, nodes: list[EspNode]
) -> None:
    sat = env_node(nodes, mosquitto)
    sat.announce(
        {
            "co2": "812",
            "temperature": "21.40",
            "humidity": "45.20",
            "uptime": "3600",
            "wifi_signal": "-61",
        }
    )
    source, sink = make_source(mosquitto), Recorder()
    async with running(source, sink):
        data = await sink.until(env(lambda d: d.co2_ppm is not None and d.humidity_pct is not None))
    assert data == EnvironmentData(
        co2_ppm=812.0, temperature_c=21.4, humidity_pct=45.2, sensor_ok=True
    )
    assert source.faults() == []
    assert not source.rejected


async def test_abbreviated_discovery_and_two_nodes_averaged(
    mosquitto: Mosquitto, nodes: list[EspNode]
) -> None:
    source, sink = make_source(mosquitto), Recorder()
    async with running(source, sink):
        one = env_node(nodes, mosquitto, "env-1")
        one.announce({"co2": "800", "temperature": "21.00", "humidity": "40.00"})
        two = node(
            nodes,
            mosquitto,
            "env-2",
            "environment-node",
            [CO2, TEMPERATURE, HUMIDITY, SOUND, UPTIME],
            abbreviated=True,
        )
        assert "stat_t" in two.discovery("co2") and "dev" in two.discovery("co2")
        two.announce(
            {"co2": "1000", "temperature": "23.00", "humidity": "50.00", "sound_level": "48.3"}
        )
        data = await sink.until(env(lambda d: d.co2_ppm == 900.0 and d.noise_dba is not None))
    assert data.temperature_c == 22.0
    assert data.humidity_pct == 45.0
    assert data.noise_dba == 48.3
    assert data.sensor_ok


async def test_state_that_comes_before_its_discovery_is_kept(
    mosquitto: Mosquitto, nodes: list[EspNode]
) -> None:
    sat = env_node(nodes, mosquitto)
    sat.set("co2", "1234")  # retained states and discovery come in no fixed order
    source, sink = make_source(mosquitto), Recorder()
    async with running(source, sink):
        sat.publish(sat.discovery_topic("co2"), json.dumps(sat.discovery("co2")))
        data = await sink.until(env(lambda d: d.co2_ppm is not None))
    assert data.co2_ppm == 1234.0


async def test_a_sensor_without_reading_is_null_not_garbage(
    mosquitto: Mosquitto, nodes: list[EspNode]
) -> None:
    source, sink = make_source(mosquitto), Recorder()
    async with running(source, sink):
        sat = env_node(nodes, mosquitto)
        sat.announce({"co2": "700", "temperature": "20.00"})
        await sink.until(env(lambda d: d.co2_ppm == 700.0))
        mark = sink.mark()
        sat.set("co2", "None")  # publish_nan_as_none: true (ours)
        await sink.until(env(lambda d: d.co2_ppm is None), after=mark)
        mark = sink.mark()
        sat.set("co2", "nan")  # ESPHome's default without it
        sat.set("temperature", "21.50")
        data = await sink.until(env(lambda d: d.temperature_c == 21.5), after=mark)
    assert data.co2_ppm is None
    assert not source.rejected


# -- lockers ----------------------------------------------------------------------------------
async def test_locker_node_slots_door_and_events(
    mosquitto: Mosquitto, nodes: list[EspNode]
) -> None:
    sat = node(nodes, mosquitto, "locker-a", "locker-node", [*SLOTS, DOOR, UPTIME, WIFI])
    states = {f"slot_{n}": "ON" for n in range(1, 9)} | {"slot_8": "OFF", "door": "OFF"}
    sat.announce(states)
    source, sink = make_source(mosquitto), Recorder()

    def locker(pred: Any) -> Any:
        return lambda d: isinstance(d, LockerData) and pred(d)

    async with running(source, sink):
        first = await sink.until(locker(lambda d: len(d.slots) == 8))
        assert first.door_open is False
        assert [(s.slot, s.present, s.charging) for s in first.slots] == [
            (str(n), n != 8, None) for n in range(1, 9)
        ]
        assert "locker-a" in {sub for d, sub in sink.items if isinstance(d, LockerData)}
        assert not sink.events("checkout")  # the first state is no change

        mark = sink.mark()
        sat.set("door", "ON")
        sat.set("slot_3", "OFF")
        after = await sink.until(
            locker(lambda d: d.door_open and not d.slots[2].present), after=mark
        )
        assert after.slots[2].slot == "3"
        opened = await sink.event("door_opened")
        checkout = await sink.event("checkout")
    assert opened.locker == "locker-a"
    assert (checkout.locker, checkout.slot) == ("locker-a", "3")


async def test_locker_id_from_the_room_config(mosquitto: Mosquitto, nodes: list[EspNode]) -> None:
    sat = node(nodes, mosquitto, "locker-b", "locker-node", [*SLOTS[:2], DOOR])
    sat.announce({"slot_1": "ON", "slot_2": "ON", "door": "OFF"})
    source = make_source(mosquitto, nodes={"locker-b": {"locker": "tablets"}})
    sink = Recorder()
    async with running(source, sink):
        await sink.until(lambda d: isinstance(d, LockerData))
    assert {sub for d, sub in sink.items if isinstance(d, LockerData)} == {"tablets"}


# -- occupancy --------------------------------------------------------------------------------
async def test_door_counter_people_across_a_node_restart(
    mosquitto: Mosquitto, nodes: list[EspNode]
) -> None:
    source, sink = make_source(mosquitto, capacity=30), Recorder()

    def people(n: int | None) -> Any:
        return lambda d: isinstance(d, OccupancyData) and d.people == n

    async with running(source, sink):
        door = node(
            nodes,
            mosquitto,
            "door-1",
            "door-counter-node",
            [PEOPLE_IN, PEOPLE_OUT, BEAM_FAULT, UPTIME],
        )
        door.announce({"people_in": "5", "people_out": "2", "beam_fault": "OFF", "uptime": "7200"})
        data = await sink.until(people(3))
        assert data.occupied and data.capacity == 30
        mark = sink.mark()
        door.set("people_in", "6")
        await sink.until(people(4), after=mark)
        # the node reboots: its totals start again at 0 (and its uptime falls)
        mark = sink.mark()
        door.set("uptime", "12")
        door.set("people_in", "1")
        door.set("people_out", "0")
        await sink.until(people(5), after=mark)
        # more leave than the count: it stays at 0 and later entries count
        mark = sink.mark()
        door.set("people_out", "9")
        await sink.until(people(0), after=mark)
        mark = sink.mark()
        door.set("people_in", "3")
        await sink.until(people(2), after=mark)
        # a blocked beam is a health fault of the node
        door.set("beam_fault", "ON")
        await asyncio.wait_for(_until(lambda: "satellite:door-1:beam_fault" in source.faults()), 10)
    assert source.map.nodes["door-1"].restarts == 1


async def _until(cond: Any) -> None:
    while not cond():
        await asyncio.sleep(0.02)


# -- availability ------------------------------------------------------------------------------
async def test_node_that_loses_its_connection_shows_in_faults(
    mosquitto: Mosquitto, nodes: list[EspNode]
) -> None:
    source, sink = make_source(mosquitto), Recorder()
    async with running(source, sink):
        sat = env_node(nodes, mosquitto)
        sat.announce({"co2": "650", "temperature": "20.00", "humidity": "40.00"})
        await sink.until(env(lambda d: d.co2_ppm == 650.0))
        assert source.faults() == []
        mark = sink.mark()
        sat.lose_connection()  # the broker publishes the Last Will "offline"
        data = await sink.until(env(lambda d: not d.sensor_ok), after=mark)
        assert data.co2_ppm is None  # an offline node's last values are not the present
        assert source.faults() == ["satellite:env-1"]
        assert "env-1 offline" in (sink.faults["satellites"] or "")
        # it comes back: birth message, discovery and states again
        mark = sink.mark()
        env_node(nodes, mosquitto).announce({"co2": "660"})
        await sink.until(env(lambda d: d.sensor_ok and d.co2_ppm == 660.0), after=mark)
        assert source.faults() == []
        assert sink.faults["satellites"] is None


async def test_node_that_goes_silent_shows_in_faults(
    mosquitto: Mosquitto, nodes: list[EspNode]
) -> None:
    source, sink = make_source(mosquitto, silent_after_s=1.0), Recorder()
    async with running(source, sink):
        sat = env_node(nodes, mosquitto)
        sat.announce({"co2": "700", "temperature": "20.00", "humidity": "40.00"})
        await sink.until(env(lambda d: d.co2_ppm == 700.0))
        assert source.faults() == []
        mark = sink.mark()
        sat.go_quiet()  # still connected (no Last Will), but nothing more comes
        await sink.until(env(lambda d: not d.sensor_ok), after=mark, timeout=10)
        assert source.faults() == ["satellite:env-1"]
        assert "env-1 silent" in (sink.faults["satellites"] or "")


async def test_retained_state_of_a_dead_node_is_not_taken_for_life(
    mosquitto: Mosquitto, nodes: list[EspNode]
) -> None:
    # the node published yesterday and died without a Will reaching the broker
    sat = env_node(nodes, mosquitto)
    sat.announce({"co2": "900"})
    sat.go_quiet()
    source, sink = make_source(mosquitto, silent_after_s=1.0), Recorder()
    async with running(source, sink):
        await sink.until(env(lambda d: d.co2_ppm == 900.0))
        await sink.until(env(lambda d: not d.sensor_ok), timeout=10)
    assert source.faults() == ["satellite:env-1"]


async def test_a_reconnect_to_the_local_broker_does_not_revive_a_silent_node(
    mosquitto: Mosquitto, nodes: list[EspNode]
) -> None:
    source, sink = make_source(mosquitto, silent_after_s=1.0), Recorder()
    async with running(source, sink):
        sat = env_node(nodes, mosquitto)
        sat.announce({"co2": "700", "temperature": "20.00", "humidity": "40.00"})
        await sink.until(env(lambda d: d.co2_ppm == 700.0))
        # gone without its Will (a clean DISCONNECT): its retained status still says online
        sat.disconnect()
        await sink.until(env(lambda d: not d.sensor_ok), timeout=10)
        assert source.map.nodes["env-1"].online is True
        # the Pi's broker restarts; its retained messages come again on the new subscription
        await asyncio.to_thread(mosquitto.stop)
        await asyncio.to_thread(mosquitto.start)
        await asyncio.wait_for(_until(lambda: source.connects == 2), 20)
        mark = sink.mark()
        await sink.until(env(), after=mark)  # the retained burst has been taken
        await asyncio.sleep(0.8)  # several report intervals
        assert all(not d.sensor_ok for d in sink.data[mark:] if isinstance(d, EnvironmentData))
        assert source.faults() == ["satellite:env-1"]


# -- garbage ----------------------------------------------------------------------------------
async def test_malformed_messages_are_counted_and_ignored(
    mosquitto: Mosquitto, nodes: list[EspNode]
) -> None:
    source, sink = make_source(mosquitto), Recorder()
    async with running(source, sink):
        sat = env_node(nodes, mosquitto)
        sat.announce({"co2": "800", "temperature": "21.00", "humidity": "40.00"})
        await sink.until(env(lambda d: d.co2_ppm == 800.0))
        bad_unit = sat.discovery("co2") | {
            "unit_of_measurement": "%",
            "state_topic": f"{sat.prefix}/sensor/co2b/state",
        }
        garbage = [
            ("homeassistant/sensor/env-1/x/config", b"{not json"),
            ("homeassistant/sensor/env-1/y/config", b"[1, 2]"),
            ("homeassistant/sensor/env-1/z/config", json.dumps({"name": "Z"}).encode()),
            ("homeassistant/sensor/env-1/co2b/config", json.dumps(bad_unit).encode()),
            (sat.state_topic("co2"), b"eight hundred"),
            (sat.state_topic("co2"), b"1e9"),
            (sat.state_topic("temperature"), b"\xff\xfe"),
            (sat.state_topic("humidity"), b"4" * 300),
            (f"{sat.prefix}/status", b"maybe"),
        ]
        for topic, payload in garbage:
            sat.publish(topic, payload, retain=False)
        sat.set("temperature", "22.00")  # a good value after the garbage still counts
        data = await sink.until(env(lambda d: d.temperature_c == 22.0))
    assert data.co2_ppm is None or data.co2_ppm == 800.0
    assert data.humidity_pct == 40.0
    assert dict(source.rejected) == {
        "discovery-not-json": 2,
        "discovery-no-state-topic": 1,
        "discovery-unit": 1,
        "sensor-not-a-number": 1,
        "sensor-out-of-range": 1,
        "state-not-text": 1,
        "state-too-large": 1,
        "status-payload": 1,
    }
    assert source.faults() == []


async def test_binary_sensor_garbage(mosquitto: Mosquitto, nodes: list[EspNode]) -> None:
    sat = node(nodes, mosquitto, "locker-a", "locker-node", [*SLOTS[:2], DOOR])
    sat.announce({"slot_1": "ON", "slot_2": "OFF", "door": "OFF"})
    source, sink = make_source(mosquitto), Recorder()
    async with running(source, sink):
        first = await sink.until(lambda d: isinstance(d, LockerData))
        sat.set("slot_1", "on")  # not ESPHome's "ON"
        sat.set("door", "ON")
        after = await sink.until(lambda d: isinstance(d, LockerData) and d.door_open)
    assert after.slots == first.slots
    assert source.rejected["binary-payload"] == 1
    assert not sink.events("checkout")


# -- config and the pure map -------------------------------------------------------------------
def test_config_errors_say_how_to_fix() -> None:
    with pytest.raises(ValidationError, match=r"mqtt://host\[:port\]"):
        SatellitesSection(broker="http://127.0.0.1:1883")
    with pytest.raises(ValidationError, match="slot:<slot id>"):
        SatellitesSection(nodes={"env-1": {"entities": {"co2": "carbon"}}})
    with pytest.raises(ValidationError, match="topic filter"):
        SatellitesSection(topic_filter="learnroom-sat/#/x")
    section = SatellitesSection(broker="mqtt://sat:s%40cret@127.0.0.1:1884")
    assert section.endpoint == ("127.0.0.1", 1884, False, "sat", "s@cret")


class ManualClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.start = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.t)

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


def test_mapping_override_and_nightly_reset() -> None:
    clock = ManualClock()
    config = SatellitesSection(
        nodes={"door-x": {"entities": {"ins": "people_in", "outs": "people_out"}}}, reset_hour=3
    )
    sats = SatelliteMap(config, clock, 10, TZ)
    base = "homeassistant/sensor/door-x/{}/config"
    for oid in ("ins", "outs"):
        disc = {"stat_t": f"x/door-x/sensor/{oid}/state", "avty_t": "x/door-x/status", "name": oid}
        # topics outside topic_filter are returned for the source to subscribe to
        more = sats.handle(base.format(oid), json.dumps(disc).encode(), False)
        assert set(more) == {f"x/door-x/sensor/{oid}/state", "x/door-x/status"}
    sats.handle("x/door-x/status", b"online", False)
    sats.handle("x/door-x/sensor/ins/state", b"7", False)
    sats.handle("x/door-x/sensor/outs/state", b"3", False)
    assert sats.occupancy() == OccupancyData(people=4, occupied=True, capacity=10)
    assert not sats.maybe_reset()  # 02:00 in Berlin
    clock.t = 3600.0  # 03:00 local
    sats.handle("x/door-x/status", b"online", False)
    assert sats.maybe_reset()
    assert sats.occupancy() is not None and sats.occupancy().people == 0  # type: ignore[union-attr]
    assert not sats.maybe_reset()  # once a day
    sats.handle("x/door-x/sensor/ins/state", b"8", False)
    assert sats.occupancy().people == 1  # type: ignore[union-attr]
