"""Broker security as provisioned, against a real Mosquitto with the generated password file,
ACL and certificates. A denied MQTT 3.1.1 publish still gets its PUBACK and is dropped, so
what is allowed is judged by what a subscriber receives."""

from __future__ import annotations

import getpass
import json
import shutil
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

from gateway.central.tools.provision import (
    AUDIT_LOG,
    Provisioner,
    acl_text,
    passwd_text,
    password_hash,
    read_acl,
    read_passwd,
)
from gateway.central.tools.provision.files import write_atomic
from gateway.errors import ConfigError
from gateway.launch.broker import Mosquitto, free_port, mosquitto_path
from gateway.models import OccupancyData, make_envelope
from tests.central.util import wait_for
from tests.paths import ROOT


def creds(out: Path, site: str, room: str, folder: str | None = None) -> tuple[str, str]:
    config = out / (folder or f"rooms/{site}/{room}") / "room.toml"
    mqtt_section = tomllib.loads(config.read_text())
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
    assert lines[0].startswith("gw.s.b: revoked")
    assert not (out / "rooms" / "s" / "b").exists()
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
    assert "gw.s.a: already" in lines[-2]
    after = {p: p.read_bytes() for p in provisioned.rglob("*") if p.is_file()}
    assert after == before
    assert oct((provisioned / "rooms" / "s" / "a" / "room.toml").stat().st_mode & 0o777) == "0o600"
    assert oct((provisioned / "ca" / "ca.key").stat().st_mode & 0o777) == "0o600"


def test_the_agent_connects_over_tls_with_the_provisioned_config(
    secured: tuple[Mosquitto, Path, int], tmp_path: Path
):
    broker, out, tls_port = secured
    config = out / "rooms" / "s" / "a" / "room.toml"
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
    room = out / "rooms" / "s" / "c"
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
        stranger = Client(port, "gw.s.c", creds(out, "s", "c")[1])  # no certificate
        assert not stranger.connected
        for c in (ingest, gateway, stranger):
            c.close()


# -- issue 12: provisioning you can trust ----------------------------------------------------


def files(out: Path) -> dict[str, bytes]:
    """Every file of a provision folder, by relative path (the audit log aside)."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != AUDIT_LOG
    }


def reload(broker: Mosquitto) -> None:
    """SIGHUP: Mosquitto rereads password file, ACL and CRL; it logs nothing to wait for.

    A SIGHUP right after the port opens ended Mosquitto under load (seen here: the signal's
    default action, before its handler was in place); a CONNACK first shows its main loop
    runs.
    """
    assert broker.proc is not None
    probe = Client(broker.port, "probe", "-")
    probe.close()
    assert probe.connected or probe.refused is not None
    broker.proc.send_signal(signal.SIGHUP)
    time.sleep(1)
    assert broker.proc.poll() is None, "Mosquitto survived the reload"


def connects(port: int, user: str, password: str, **kw: Any) -> bool:
    client = Client(port, user, password, **kw)
    client.close()
    return client.connected


def writes_only_its_room(
    port: int, out: Path, creds_of: tuple[str, str], own: str, other: str
) -> None:
    """What the central user receives from this gateway: its own room, never ``other``."""
    ingest = Client(port, *central_creds(out, "ingest"))
    ingest.subscribe("learnroom/v1/#")
    gateway = Client(port, *creds_of)
    assert gateway.connected
    gateway.publish(f"learnroom/v1/{other}/occupancy")
    gateway.publish(f"learnroom/v1/{own}/occupancy")
    wait_for(lambda: bool(ingest.received), 10, f"{own} arrives")
    time.sleep(0.5)
    assert ingest.received == [f"learnroom/v1/{own}/occupancy"]
    gateway.close()
    ingest.close()


@pytest.mark.parametrize(
    ("site", "room"),
    [("s\n", "c"), ("s", "c\n"), ("s", "C"), ("-s", "c"), ("s", ""), ("s", "c/d"), ("s.t", "c")],
)
def test_a_name_is_matched_whole_and_a_refused_run_leaves_the_site_working(
    secured: tuple[Mosquitto, Path, int], site: str, room: str
):
    """Before, ``--site $'s\\n'`` was accepted: broken ACL lines, and after SIGHUP Mosquitto ran
    with no ACL at all, so gateway a wrote room b."""
    broker, out, _ = secured
    before = files(out)
    with pytest.raises(ConfigError, match="slug"):
        Provisioner(out, broker_host="127.0.0.1").add(site, room)
    assert files(out) == before
    reload(broker)
    writes_only_its_room(broker.port, out, creds(out, "s", "a"), own="s/a", other="s/b")


def test_pairs_with_the_same_dashed_name_are_two_gateways(tmp_path: Path):
    """``stadt-mitte``/``raum-1`` and ``stadt``/``mitte-raum-1`` were one user and one folder:
    the second got the first one's credentials, and revoking one revoked both."""
    out = tmp_path / "provision"
    prov = Provisioner(out, broker_host="127.0.0.1", tls=False)
    prov.add("stadt-mitte", "raum-1")
    lines = prov.add("stadt", "mitte-raum-1")
    assert any(line.startswith("gw.stadt.mitte-raum-1: created") for line in lines)
    one, two = creds(out, "stadt-mitte", "raum-1"), creds(out, "stadt", "mitte-raum-1")
    assert one[0] != two[0] and one[1] != two[1]
    broker = Mosquitto(
        tmp_path / "mosquitto",
        allow_anonymous=False,
        extra=f"password_file {out / 'mosquitto/passwd'}\nacl_file {out / 'mosquitto/acl'}\n",
    )
    with broker.running():
        writes_only_its_room(broker.port, out, one, "stadt-mitte/raum-1", "stadt/mitte-raum-1")
        writes_only_its_room(broker.port, out, two, "stadt/mitte-raum-1", "stadt-mitte/raum-1")
        Provisioner(out).revoke("stadt", "mitte-raum-1")
        reload(broker)
        assert not connects(broker.port, *two)
        assert connects(broker.port, *one)


def test_folders_of_the_first_release_keep_working(tmp_path: Path):
    """A folder made by the first release (user ``gw-<site>-<room>``, ``rooms/<site>-<room>``)
    keeps its gateway; the pair that shared its name gets its own; revoking is by pair."""
    out = tmp_path / "provision"
    Provisioner(out, broker_host="127.0.0.1", tls=False).add("x", "y")  # central users, etc.
    state = json.loads((out / "state.json").read_text())
    state["gateways"] = {"gw-stadt-mitte-raum-1": {"site": "stadt-mitte", "room": "raum-1"}}
    state["gateways"]["gw-stadt-mitte-raum-1"]["hash"] = password_hash("old-pi")
    (out / "state.json").write_text(json.dumps(state))
    legacy = out / "rooms" / "stadt-mitte-raum-1"
    legacy.mkdir(parents=True)
    (legacy / "room.toml").write_text(
        '[room]\nsite = "stadt-mitte"\nroom = "raum-1"\n'
        '[mqtt]\nusername = "gw-stadt-mitte-raum-1"\npassword = "old-pi"\n'
    )
    prov = Provisioner(out, broker_host="127.0.0.1", tls=False)
    assert "gw-stadt-mitte-raum-1: already" in prov.add("stadt-mitte", "raum-1")[-2]
    prov.add("stadt", "mitte-raum-1")
    old = creds(out, "stadt-mitte", "raum-1", folder="rooms/stadt-mitte-raum-1")
    new = creds(out, "stadt", "mitte-raum-1")
    assert new[0] == "gw.stadt.mitte-raum-1"
    broker = Mosquitto(
        tmp_path / "mosquitto",
        allow_anonymous=False,
        extra=f"password_file {out / 'mosquitto/passwd'}\nacl_file {out / 'mosquitto/acl'}\n",
    )
    with broker.running():
        writes_only_its_room(broker.port, out, old, "stadt-mitte/raum-1", "stadt/mitte-raum-1")
        writes_only_its_room(broker.port, out, new, "stadt/mitte-raum-1", "stadt-mitte/raum-1")
        Provisioner(out).revoke("stadt-mitte", "raum-1")
        reload(broker)
        assert not legacy.exists()
        assert not connects(broker.port, *old)
        assert connects(broker.port, *new)


def test_serializers_refuse_what_mosquitto_would_misread():
    digest = password_hash("x")
    for user in ("gw:a", "gw\na", "gw a", "", "gw\r", "#gw"):
        with pytest.raises(ConfigError):
            passwd_text({user: digest})
        with pytest.raises(ConfigError):
            acl_text({user: [("write", "t")]})
    with pytest.raises(ConfigError):
        passwd_text({"gw": "plain\nuser evil"})
    for topic in ("a b", "a\nuser evil", "a/#/b", "a/b+", ""):
        with pytest.raises(ConfigError):
            acl_text({"gw": [("write", topic)]})
    text = acl_text({"gw.s.a": [("write", "learnroom/v1/s/a/+")]}, header=("made here",))
    assert read_acl(text) == {"gw.s.a": [("write", "learnroom/v1/s/a/+")]}
    assert read_passwd(passwd_text({"gw.s.a": digest})) == {"gw.s.a": digest}


def test_values_are_escaped_and_a_failed_check_keeps_the_old_file(tmp_path: Path):
    """A ``--broker-host`` with a quote made an invalid room config (exit 0); one with a
    newline is no host at all and is refused."""
    out = tmp_path / "provision"
    Provisioner(out, broker_host='broker"x', tls=False).add("s", "a")
    config = tomllib.loads((out / "rooms/s/a/room.toml").read_text())
    assert config["mqtt"]["host"] == 'broker"x'
    assert config["room"] == {"site": "s", "room": "a"}
    with pytest.raises(ConfigError, match="broker-host"):
        Provisioner(out, broker_host="broker\n[mqtt]", tls=False)
    target = out / "mosquitto" / "acl"
    before = target.read_bytes()

    def refuse(_data: bytes) -> None:
        raise ConfigError(["no"])

    with pytest.raises(ConfigError):
        write_atomic(target, b"user broken\n", check=refuse)
    assert target.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["acl", "passwd"]


def test_a_bad_state_entry_never_reaches_the_broker(secured: tuple[Mosquitto, Path, int]):
    """A hand-edited ``state.json`` whose user has a newline: before, the ACL got the line
    and, after SIGHUP, Mosquitto enforced no ACL at all."""
    broker, out, _ = secured
    state = json.loads((out / "state.json").read_text())
    state["gateways"]["gw.s.z\ntopic readwrite #"] = {"site": "s", "room": "z", "hash": "x"}
    (out / "state.json").write_text(json.dumps(state))
    before = files(out)
    with pytest.raises(ConfigError):
        Provisioner(out, broker_host="127.0.0.1").add("s", "c")
    assert files(out) == before, "neither the broker files nor a room folder for s/c"
    reload(broker)
    writes_only_its_room(broker.port, out, creds(out, "s", "a"), own="s/a", other="s/b")


def cert_broker(out: Path, workdir: Path) -> Mosquitto:
    """Client certificates only (``use_identity_as_username``), with the site CA's CRL."""
    ca = out / "ca"
    return Mosquitto(
        workdir,
        allow_anonymous=False,
        extra=(
            f"password_file {out / 'mosquitto/passwd'}\nacl_file {out / 'mosquitto/acl'}\n"
            f"listener {free_port()} 127.0.0.1\n"
            f"cafile {ca / 'ca.crt'}\ncertfile {ca / 'broker.crt'}\nkeyfile {ca / 'broker.key'}\n"
            f"crlfile {ca / 'crl.pem'}\n"
            "require_certificate true\nuse_identity_as_username true\n"
        ),
    )


def tls_port(broker: Mosquitto) -> int:
    return int(broker.extra.split("listener ")[1].split()[0])


def stolen(out: Path, site: str, room: str, to: Path) -> dict[str, Any]:
    """A copy of a gateway's certificate and key, as a thief of its Pi holds them."""
    shutil.copytree(out / "rooms" / site / room, to)
    return {
        "ca_certs": str(out / "ca" / "ca.crt"),
        "certfile": str(to / "gateway.crt"),
        "keyfile": str(to / "gateway.key"),
    }


def test_a_revoked_certificate_is_refused_after_reload(tmp_path: Path):
    """Before, a revoked certificate gateway kept its access until the site CA was replaced."""
    out = tmp_path / "provision"
    prov = Provisioner(out, broker_host="127.0.0.1", cert=True, server_names=["127.0.0.1"])
    prov.add("s", "c")
    prov.add("s", "d")
    shipped = (ROOT / "deploy" / "central" / "mosquitto.conf").read_text()
    assert "\ncrlfile /mosquitto/certs/crl.pem\n" in shipped
    broker = cert_broker(out, tmp_path / "mosquitto")
    with broker.running():
        port = tls_port(broker)
        thief = stolen(out, "s", "c", tmp_path / "stolen")
        assert connects(port, "", "", tls=thief)
        lines = Provisioner(out, cert=True).revoke("s", "c")
        assert any(line.startswith("CRL:") for line in lines)
        reload(broker)
        assert not connects(port, "", "", tls=thief)
        assert connects(port, "", "", tls=stolen(out, "s", "d", tmp_path / "d"))


def test_rotation_refuses_the_old_credentials_and_changes_nothing_else(tmp_path: Path):
    out = tmp_path / "provision"
    prov = Provisioner(out, broker_host="127.0.0.1", cert=True, server_names=["127.0.0.1"])
    prov.add("s", "c")
    prov.add("s", "d")
    broker = cert_broker(out, tmp_path / "mosquitto")
    with broker.running():
        plain, port = broker.port, tls_port(broker)  # passwords on the plain listener
        old_password = creds(out, "s", "c")
        old_cert = stolen(out, "s", "c", tmp_path / "old")
        before = files(out)
        lines = Provisioner(out, broker_host="elsewhere", cert=True).rotate("s", "c")
        assert lines[0].startswith("gw.s.c: rotated")
        after = files(out)
        changed = sorted(k for k in after if after.get(k) != before.get(k))
        assert changed == [
            "ca/crl.pem",
            "mosquitto/passwd",
            "rooms/s/c/gateway.crt",
            "rooms/s/c/gateway.key",
            "rooms/s/c/room.toml",
            "state.json",
        ]
        new_config = tomllib.loads((out / "rooms/s/c/room.toml").read_text())["mqtt"]
        old_config = tomllib.loads(before["rooms/s/c/room.toml"].decode())["mqtt"]
        assert {k: v for k, v in new_config.items() if k != "password"} == {
            k: v for k, v in old_config.items() if k != "password"
        }, "the room config keeps its broker (not the flag's)"
        reload(broker)
        assert not connects(plain, *old_password)
        assert connects(plain, *creds(out, "s", "c"))
        assert not connects(port, "", "", tls=old_cert)
        assert connects(port, "", "", tls=stolen(out, "s", "c", tmp_path / "new"))
        assert connects(plain, *creds(out, "s", "d"))


def test_the_audit_log_says_who_did_what_when_and_no_secret(tmp_path: Path):
    out = tmp_path / "provision"
    prov = Provisioner(out, broker_host="127.0.0.1", cert=True, server_names=["127.0.0.1"])
    prov.add("s", "c")
    prov.add("s", "c")  # nothing changes: nothing to log
    Provisioner(out, cert=True).rotate("s", "c")
    secret = creds(out, "s", "c")[1]
    Provisioner(out).revoke("s", "c")
    text = (out / AUDIT_LOG).read_text()
    records = [json.loads(line) for line in text.splitlines()]
    assert [(r["what"], r["site"], r["room"], r["user"]) for r in records] == [
        ("provision", "s", "c", "gw.s.c"),
        ("rotate", "s", "c", "gw.s.c"),
        ("revoke", "s", "c", "gw.s.c"),
    ]
    assert {r["who"] for r in records} == {getpass.getuser()}
    assert all(datetime.fromisoformat(r["when"]).tzinfo is not None for r in records)
    assert records[0]["serial"] != records[1]["serial"] == records[2]["serial"]
    assert secret not in text and "$7$" not in text and "PRIVATE" not in text
