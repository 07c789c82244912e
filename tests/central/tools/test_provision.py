"""Broker security as provisioned, against a real Mosquitto with the generated password file,
ACL and certificates. A denied MQTT 3.1.1 publish still gets its PUBACK and is dropped, so
what is allowed is judged by what a subscriber receives."""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.central.tools.provision import Provisioner, password_hash
from gateway.launch.broker import Mosquitto, free_port, mosquitto_path
from gateway.models import OccupancyData, make_envelope
from tests.central.util import wait_for


def creds(out: Path, site: str, room: str) -> tuple[str, str]:
    mqtt_section = tomllib.loads((out / "rooms" / f"{site}-{room}" / "room.toml").read_text())
    return mqtt_section["mqtt"]["username"], mqtt_section["mqtt"]["password"]


def central_creds(out: Path, service: str) -> tuple[str, str]:
    env = dict(
        line.split("=", 1) for line in (out / "central" / f"{service}.env").read_text().split()
    )
    return env["LEARNROOM_MQTT_USERNAME"], env["LEARNROOM_MQTT_PASSWORD"]


class Client:
    """A paho client that records what it receives and whether it got in."""

    def __init__(self, port: int, user: str, password: str, *, tls: dict[str, Any] | None = None):
        self.received: list[str] = []
        self.refused: str | None = None
        self.connected = False
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}"
        )
        self.client.username_pw_set(user, password)
        if tls:
            self.client.tls_set(**tls)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, m: self.received.append(m.topic)
        self.client.reconnect_delay_set(30, 30)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        try:
            wait_for(lambda: self.connected or self.refused is not None, 5, f"{user} connects")
        except AssertionError:
            self.refused = "no CONNACK (the TLS handshake failed)"

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.refused = str(reason)
        else:
            self.connected = True

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)
        time.sleep(0.3)

    def publish(self, topic: str, payload: bytes = b"{}") -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def provisioned(tmp_path: Path) -> Path:
    out = tmp_path / "provision"
    prov = Provisioner(out, broker_host="127.0.0.1", server_names=["127.0.0.1", "localhost"])
    for room in ("a", "b"):
        prov.add("s", room)
    return out


@pytest.fixture
def secured(provisioned: Path, tmp_path: Path) -> Iterator[tuple[Mosquitto, Path, int]]:
    """A plain listener and a TLS one, both with the password file and the ACL."""
    if mosquitto_path() is None:
        pytest.fail("mosquitto is required; run scripts/test")
    tls_port = free_port()
    ca = provisioned / "ca"
    broker = Mosquitto(
        tmp_path / "mosquitto",
        allow_anonymous=False,
        extra=(
            f"password_file {provisioned / 'mosquitto' / 'passwd'}\n"
            f"acl_file {provisioned / 'mosquitto' / 'acl'}\n"
            f"listener {tls_port} 127.0.0.1\n"
            f"cafile {ca / 'ca.crt'}\ncertfile {ca / 'broker.crt'}\nkeyfile {ca / 'broker.key'}\n"
        ),
    )
    with broker.running():
        yield broker, provisioned, tls_port


def test_password_hashes_are_mosquitto_passwd_compatible(tmp_path: Path):
    """What mosquitto_passwd writes, our hash reproduces for the same salt."""
    import base64
    import shutil

    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.fail("mosquitto_passwd is required; run scripts/test (mosquitto)")
    path = tmp_path / "pw"
    subprocess.run([tool, "-c", "-b", str(path), "alice", "s3cret"], check=True)
    stored = path.read_text().strip().split(":", 1)[1]
    salt = base64.b64decode(stored.split("$")[3])
    assert password_hash("s3cret", salt) == stored


def test_each_gateway_writes_only_its_own_room_and_reads_nothing(
    secured: tuple[Mosquitto, Path, int],
):
    broker, out, _ = secured
    ingest = Client(broker.port, *central_creds(out, "ingest"))
    ingest.subscribe("learnroom/v1/#")
    a = Client(broker.port, *creds(out, "s", "a"))
    b = Client(broker.port, *creds(out, "s", "b"))
    a.subscribe("learnroom/v1/#")  # accepted, but it must never see a thing

    a.publish("learnroom/v1/s/a/occupancy")
    a.publish("learnroom/v1/s/a/lockers/tablets")
    a.publish("learnroom/v1/s/b/occupancy")  # another room
    a.publish("learnroom/v1/s/a/alerts/co2_ventilate")  # the alert service's topic
    a.publish("learnroom/v1/s/a/occupancy/extra")  # not a topic of the contract
    b.publish("learnroom/v1/s/b/environment")
    wait_for(lambda: len(ingest.received) >= 3, 10, "the central user receives")
    time.sleep(1)
    assert sorted(ingest.received) == [
        "learnroom/v1/s/a/lockers/tablets",
        "learnroom/v1/s/a/occupancy",
        "learnroom/v1/s/b/environment",
    ]
    assert a.received == [], "a gateway reads nothing, not even its neighbours"

    alerts = Client(broker.port, *central_creds(out, "alerts"))
    alerts.publish("learnroom/v1/s/a/alerts/co2_ventilate")
    alerts.publish("learnroom/v1/s/a/occupancy")  # not its to write
    wait_for(lambda: len(ingest.received) >= 4, 10, "the alert arrives")
    time.sleep(0.5)
    assert ingest.received[3:] == ["learnroom/v1/s/a/alerts/co2_ventilate"]
    for c in (ingest, a, b, alerts):
        c.close()


def test_wrong_password_and_revoked_gateway_cannot_connect(
    secured: tuple[Mosquitto, Path, int],
):
    broker, out, _ = secured
    user, _ = creds(out, "s", "b")
    wrong = Client(broker.port, user, "not-the-password")
    assert wrong.refused is not None and not wrong.connected
    wrong.close()
    password = creds(out, "s", "b")[1]
    before = Client(broker.port, user, password)
    assert before.connected
    before.close()

    lines = Provisioner(out).revoke("s", "b")
    assert lines[0].startswith("gw-s-b: revoked")
    assert not (out / "rooms" / "s-b").exists()
    assert broker.proc is not None
    broker.proc.send_signal(signal.SIGHUP)  # Mosquitto reloads password file and ACL
    time.sleep(1)
    after = Client(broker.port, user, password)
    assert after.refused is not None and not after.connected
    after.close()
    # the other gateway is untouched
    still = Client(broker.port, *creds(out, "s", "a"))
    assert still.connected
    still.close()


def test_provisioning_again_changes_nothing(provisioned: Path):
    before = {p: p.read_bytes() for p in provisioned.rglob("*") if p.is_file()}
    lines = Provisioner(provisioned, broker_host="127.0.0.1").add("s", "a")
    assert "gw-s-a: already" in lines[-2]
    after = {p: p.read_bytes() for p in provisioned.rglob("*") if p.is_file()}
    assert after == before
    assert oct((provisioned / "rooms" / "s-a" / "room.toml").stat().st_mode & 0o777) == "0o600"
    assert oct((provisioned / "ca" / "ca.key").stat().st_mode & 0o777) == "0o600"


def test_the_agent_connects_over_tls_with_the_provisioned_config(
    secured: tuple[Mosquitto, Path, int], tmp_path: Path
):
    broker, out, tls_port = secured
    config = out / "rooms" / "s-a" / "room.toml"
    text = config.read_text().replace("port = 8883", f"port = {tls_port}")
    config.write_text(text)
    ingest = Client(
        tls_port,
        *central_creds(out, "ingest"),
        tls={"ca_certs": str(out / "ca" / "ca.crt"), "cert_reqs": ssl.CERT_REQUIRED},
    )
    ingest.subscribe("learnroom/v1/#")
    log = (tmp_path / "agent.log").open("wb")
    agent = subprocess.Popen(
        [
            *(sys.executable, "-m", "gateway", "agent", "-c", str(config), "--simulate"),
            *("--state-dir", str(tmp_path / "state"), "--speed", "60"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        wait_for(
            # the provisioned config names no hardware: it sends its status and health
            lambda: (
                "learnroom/v1/s/a/status" in ingest.received
                and "learnroom/v1/s/a/health" in ingest.received
            ),
            30,
            "the gateway's readings arrive over TLS",
        )
    finally:
        agent.terminate()
        agent.wait(10)
        log.close()
        ingest.close()


def test_a_client_certificate_works_with_identity_as_user(tmp_path: Path):
    """``--cert``: the gateway's certificate, signed by the site CA, names its ACL user."""
    out = tmp_path / "provision"
    prov = Provisioner(out, broker_host="127.0.0.1", cert=True, server_names=["127.0.0.1"])
    prov.add("s", "c")
    ca = out / "ca"
    port = free_port()
    broker = Mosquitto(
        tmp_path / "mosquitto",
        allow_anonymous=False,
        extra=(
            f"password_file {out / 'mosquitto' / 'passwd'}\n"
            f"acl_file {out / 'mosquitto' / 'acl'}\n"
            f"listener {port} 127.0.0.1\n"
            f"cafile {ca / 'ca.crt'}\ncertfile {ca / 'broker.crt'}\nkeyfile {ca / 'broker.key'}\n"
            "require_certificate true\nuse_identity_as_username true\n"
        ),
    )
    room = out / "rooms" / "s-c"
    with broker.running():
        ingest = Client(broker.port, *central_creds(out, "ingest"))
        ingest.subscribe("learnroom/v1/#")
        tls = {
            "ca_certs": str(ca / "ca.crt"),
            "certfile": str(room / "gateway.crt"),
            "keyfile": str(room / "gateway.key"),
        }
        # no password: the certificate's CN is the user the ACL knows
        gateway = Client(port, "", "", tls=tls)
        assert gateway.connected
        payload = make_envelope(
            "s", "c", OccupancyData(people=1, occupied=True), datetime.now(UTC), 1
        ).model_dump_json()
        gateway.publish("learnroom/v1/s/c/occupancy", payload.encode())
        gateway.publish("learnroom/v1/s/d/occupancy", payload.encode())
        wait_for(lambda: bool(ingest.received), 10, "the reading arrives")
        time.sleep(0.5)
        assert ingest.received == ["learnroom/v1/s/c/occupancy"]
        stranger = Client(port, "gw-s-c", creds(out, "s", "c")[1])  # no certificate
        assert not stranger.connected
        for c in (ingest, gateway, stranger):
            c.close()
