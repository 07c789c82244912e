"""The Pi's own broker for ESP32 satellites, as shipped (deploy/pi), against a real Mosquitto.

Two lines of the README's threat model: a compromised satellite can forge readings of its own
room but cannot command a switch (unlock a locker) or read the other nodes' states; a resident
on the Wi-Fi cannot use the room's broker at all. Publishes denied by an ACL are still
acknowledged under MQTT 3.1.1, so each "cannot" is checked by what a subscriber receives, next
to a control message that does arrive.
"""

from __future__ import annotations

import getpass
import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.launch.broker import free_port, mosquitto_path, port_open
from tests.central.util import wait_for
from tests.paths import ROOT

PI = ROOT / "deploy" / "pi"
USERS = {"satellite": "sat-secret-1", "learnroom-agent": "agent-secret-1"}


@pytest.fixture
def room_broker(tmp_path: Path) -> Iterator[int]:
    binary = mosquitto_path()
    if binary is None:
        pytest.fail("mosquitto is required; run scripts/test")
    passwd = tmp_path / "passwd"
    for i, (user, password) in enumerate(USERS.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run(
            ["mosquitto_passwd", *create, "-b", str(passwd), user, password],
            check=True,
            capture_output=True,
        )
    acl = tmp_path / "acl"
    acl.write_text((PI / "mosquitto-satellites.acl").read_text())
    port = free_port()
    text = (PI / "mosquitto-satellites.conf").read_text()
    text = text.replace("/etc/mosquitto/learnroom-satellites.passwd", str(passwd))
    text = text.replace("/etc/mosquitto/learnroom-satellites.acl", str(acl))
    text = re.sub(r"^listener 1883$", f"listener {port} 127.0.0.1", text, flags=re.M)
    if os.geteuid() == 0:
        text += f"user {getpass.getuser()}\n"
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text)
    log = tmp_path / "mosquitto.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=fh, stderr=fh)
    try:
        wait_for(lambda: port_open("127.0.0.1", port) or proc.poll() is not None, 10, "broker up")
        assert proc.poll() is None, log.read_text()
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


class Client:
    """A paho client that records what it receives; connect() returns the CONNACK code."""

    def __init__(self, port: int, user: str | None) -> None:
        self.port = port
        self.got: list[str] = []
        self._cond = threading.Condition()
        self._connack = threading.Event()
        self.reason = -1
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}"
        )
        if user is not None:
            self.client.username_pw_set(user, USERS[user])
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.reason = reason.value
        self._connack.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.got.append(msg.topic)
            self._cond.notify_all()

    def connect(self) -> int:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        assert self._connack.wait(10), "no CONNACK"
        return self.reason

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_: done.set()
        self.client.subscribe(topic, qos=1)
        assert done.wait(10), "no SUBACK"

    def publish(self, topic: str, payload: bytes = b"1") -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def wait_for(self, topic: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while topic not in self.got:
                left = deadline - time.monotonic()
                assert left > 0, f"{topic} never arrived; got {self.got}"
                self._cond.wait(left)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_a_resident_on_the_wifi_cannot_use_the_rooms_broker(room_broker: int):
    anonymous = Client(room_broker, None)
    try:
        # not authorised (3.1.1 code 5, which paho reports as reason 135): no anonymous users
        assert anonymous.connect() in (5, 135)
    finally:
        anonymous.close()


def test_a_compromised_satellite_cannot_unlock_a_locker_or_read_other_nodes(room_broker: int):
    agent, node, other = (Client(room_broker, u) for u in ("learnroom-agent", *["satellite"] * 2))
    try:
        for client in (agent, node, other):
            assert client.connect() == 0
        agent.subscribe("learnroom-sat/#")
        other.subscribe("learnroom-sat/#")
        # what a node may do: report its own states and discovery (the agent reads them)
        node.publish("learnroom-sat/locker-1/binary_sensor/door/state", b"ON")
        agent.wait_for("learnroom-sat/locker-1/binary_sensor/door/state")
        # what it may not: command another node's switch (a locker's lock); then a control
        # message behind it, so "not received" means refused, not "not yet"
        node.publish("learnroom-sat/locker-2/switch/lock/command", b"ON")
        node.publish("learnroom-sat/locker-1/sensor/uptime/state", b"5")
        agent.wait_for("learnroom-sat/locker-1/sensor/uptime/state")
        assert "learnroom-sat/locker-2/switch/lock/command" not in agent.got
        # the agent's own command reaches the nodes; node states never reach another node
        agent.publish("learnroom-sat/locker-2/switch/lock/command", b"ON")
        other.wait_for("learnroom-sat/locker-2/switch/lock/command")
        assert [t for t in other.got if not t.endswith("/command")] == []
    finally:
        for client in (agent, node, other):
            client.close()
