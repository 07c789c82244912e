"""``learnroom alerts`` against what can go wrong around it: an Alertmanager that answers
wrongly or not at all, timestamps no gateway should send, its own memory unreadable, and its
own loops failing. It keeps going, says so on ``/healthz`` and in its metrics, and a resolved
alert always reaches Alertmanager as resolved; or it exits non-zero for its service manager."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.central.alerts.service import AlertService
from gateway.central.config import parse_central
from gateway.launch.alertmanager import Alertmanager
from gateway.launch.broker import Mosquitto, free_port
from gateway.models import EnvironmentData, make_envelope
from tests.central.alerts.odd_alertmanager import OddAlertmanager
from tests.central.alerts.test_alerts import Webhook, running, until
from tests.central.util import Publisher, wait_for
from tests.mqtt_util import Collector


def start_alerts(
    tmp_path: Path, mosquitto: Mosquitto, am_url: str, metrics: int, extra: str = ""
) -> tuple[subprocess.Popen[bytes], Path]:
    config = tmp_path / "central.toml"
    config.write_text(
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n'
        f'[alerts]\nalertmanager_url = "{am_url}"\nalertmanager_timeout_s = 1\n'
        "evaluate_interval_s = 0.2\nresend_interval_s = 2\nstartup_grace_s = 0.5\n"
        f'metrics_port = {metrics}\nclient_id = "alerts-{metrics}"\n{extra}'
        "[alerts.rules.co2_ventilate]\nfor_s = 0\n"
    )
    log = tmp_path / "alerts.log"
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "alerts", "-c", str(config)], stdout=fh, stderr=fh
        )
    wait_for(lambda: "subscribed to" in log.read_text(), 20, "the alert service subscribes")
    return proc, log


def healthz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def metric(port: int, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    key = f"{name}{{{want}}}" if want else name
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(key + " "):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def co2(site: str, room: str, ppm: float) -> tuple[str, bytes]:
    env = make_envelope(site, room, EnvironmentData(co2_ppm=ppm), datetime.now(UTC), 1)
    return f"learnroom/v1/{site}/{room}/environment", env.model_dump_json().encode()


def active(am: Alertmanager, room: str) -> list[Any]:
    return [a for a in am.alerts() if a["labels"].get("room") == room]


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(30)


@pytest.mark.parametrize("mode", ["garbage", "truncated500", "503", "silent", "refused"])
def test_an_alertmanager_that_answers_wrongly_is_retried_and_still_gets_the_resolution(
    mode: str,
    mosquitto: Mosquitto,
    am: Alertmanager,
    hook: Webhook,
    pub: Publisher,
    tmp_path: Path,
):
    metrics = free_port()
    odd = OddAlertmanager(am.url).__enter__()
    port = odd.server_address[1]
    proc, log = start_alerts(tmp_path, mosquitto, odd.url, metrics)
    try:
        pub.publish(*co2("s", "a", 1500))
        wait_for(lambda: bool(hook.alerts("firing")), 20, "the alert reaches Alertmanager")
        if mode == "refused":  # nothing listens on the port any more
            odd.__exit__(None, None, None)
        else:
            odd.mode = mode
        pub.publish(*co2("s", "a", 600))  # resolved while Alertmanager cannot hear it
        wait_for(
            lambda: (
                metric(metrics, "learnroom_alerts_alertmanager_posts_total", result="failed") >= 2
            ),
            30,
            "the service tried again",
        )
        assert proc.poll() is None, "still running"
        status, body = healthz(metrics)
        assert status == 200, body
        assert body["loops"]["alertmanager"]["state"] in {"retrying", "posting"}
        assert metric(metrics, "learnroom_alerts_alertmanager_up") == 0
        assert metric(metrics, "learnroom_alerts_resolutions_unsent") == 1
        assert not hook.alerts("resolved")
        if mode == "refused":
            odd = OddAlertmanager(am.url, port=port).__enter__()
        odd.mode = "pass"  # the operator fixes the URL, Alertmanager is back
        wait_for(lambda: bool(hook.alerts("resolved")), 30, "the resolution arrives")
        assert not active(am, "a"), "nothing stays active in Alertmanager"
        assert metric(metrics, "learnroom_alerts_resolutions_unsent") == 0
        assert healthz(metrics)[0] == 200
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        odd.__exit__(None, None, None)
    text = log.read_text()
    assert text.count("Alertmanager is not taking alerts") == 1, "an outage is said once"
    assert "Alertmanager takes alerts again" in text
    assert "Traceback" not in text


def test_a_post_that_never_ends_makes_the_process_exit_non_zero(
    mosquitto: Mosquitto, am: Alertmanager, pub: Publisher, tmp_path: Path
):
    metrics = free_port()
    with OddAlertmanager(am.url, mode="drip") as odd:
        proc, log = start_alerts(tmp_path, mosquitto, odd.url, metrics)
        try:
            pub.publish(*co2("s", "a", 1500))
            odd.wait_requests(1, 20)
            assert healthz(metrics)[0] == 200, "within its deadline it is only posting"
            assert proc.wait(90) == 1, "exits for its service manager to start it again"
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "the alertmanager loop is stuck" in log.read_text()


def alert_payload(site: str, room: str, since: str, ts: datetime | None = None) -> bytes:
    stamp = (ts or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps(
        {
            "v": 1,
            "site": site,
            "room": room,
            "kind": "alerts",
            "ts": stamp,
            "data": {
                "rule": "co2_ventilate",
                "severity": "warning",
                "firing": True,
                "message": "CO2 1500 ppm: please ventilate",
                "since": since,
            },
        }
    ).encode()


def event_payload(room: str, due: str) -> tuple[str, bytes]:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    data = {"type": "overdue", "locker": "tablets", "slot": "1", "due": due}
    env = {"v": 1, "site": "s", "room": room, "kind": "events", "ts": stamp, "seq": 1}
    return f"learnroom/v1/s/{room}/events", json.dumps(env | {"data": data}).encode()


def test_odd_since_and_due_neither_crash_it_nor_keep_an_alert_open(
    mosquitto: Mosquitto,
    am: Alertmanager,
    hook: Webhook,
    pub: Publisher,
    tmp_path: Path,
):
    """Its memory (retained alert topics) holds what no release of it wrote; gateways send
    loans due without a zone or in 9999. The process starts, clears what it cannot read,
    resumes what it can, and alerts on the rest as ever."""
    topic = "learnroom/v1/s/{}/alerts/co2_ventilate"
    earlier = datetime.now(UTC) - timedelta(minutes=10)
    since = earlier.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    bad = {
        "no-zone": alert_payload("s", "no-zone", "2026-11-23T08:00:00"),
        "year-9999": alert_payload("s", "year-9999", "9999-12-31T23:59:59Z"),
        "year-2099": alert_payload("s", "year-2099", "2099-01-01T00:00:00Z"),
        "not-json": b"{not json",
    }
    for room, payload in [*bad.items(), ("fine", alert_payload("s", "fine", since))]:
        pub.client.publish(topic.format(room), payload, qos=1, retain=True).wait_for_publish()
    metrics = free_port()
    with Collector(mosquitto.port, "learnroom/v1/+/+/alerts/#") as seen:
        proc, log = start_alerts(tmp_path, mosquitto, am.url, metrics)
        try:
            cleared = {topic.format(room) for room in bad}
            wait_for(
                lambda: cleared <= {m.topic for m in seen.messages if not m.payload},
                20,
                "the unreadable retained alerts are cleared",
            )
            wait_for(lambda: bool(active(am, "fine")), 20, "the readable one is resumed")
            (resumed,) = active(am, "fine")
            assert resumed["startsAt"].startswith(since[:19])
            for due in ("2026-11-23T08:00:00", "9999-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00"):
                pub.publish(*event_payload("loans", due))
            pub.publish(*event_payload("loans-later", "2099-01-01T00:00:00Z"))  # not yet due
            pub.publish(*event_payload("loans-late", since))
            wait_for(lambda: bool(active(am, "loans-late")), 20, "a real overdue loan alerts")
            assert not active(am, "loans") and not active(am, "loans-later")
            pub.publish(*co2("s", "fine", 600))
            wait_for(lambda: not active(am, "fine"), 20, "the resumed alert resolves")
            assert proc.poll() is None
            assert healthz(metrics)[0] == 200
            refused = metric(
                metrics, "learnroom_alerts_messages_refused_total", reason="ts_no_zone"
            )
            assert refused >= 2  # the retained alert and the loan
            assert metric(metrics, "learnroom_alerts_errors_total", loop="mqtt") == 0
            assert stop(proc) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "Traceback" not in log.read_text()
    # the next start meets none of it again: a marker retained last comes with the others
    marker = topic.format("zz-marker")
    pub.client.publish(marker, b"x", qos=1, retain=True).wait_for_publish()
    with Collector(mosquitto.port, "learnroom/v1/+/+/alerts/#") as again:
        wait_for(lambda: marker in {m.topic for m in again.messages}, 10, "retained delivered")
        assert not {m.topic for m in again.messages if m.payload} & cleared


async def test_a_since_ahead_of_the_clock_does_not_keep_the_alert_open_after_it_resolves(
    mosquitto: Mosquitto, am: Alertmanager, hook: Webhook, pub: Publisher
):
    """With no window around the clock (a simulation at speed), a retained ``since`` in 2099
    is valid: the service carries on from the message's own time instead, so the resolution
    ends the alert in Alertmanager rather than in 2099."""
    pub.client.publish(
        "learnroom/v1/s/a/alerts/co2_ventilate",
        alert_payload("s", "a", "2099-01-01T00:00:00Z"),
        qos=1,
        retain=True,
    ).wait_for_publish()
    cfg = parse_central(
        {
            "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
            "accept": {"max_age_s": 0, "max_ahead_s": 0},
            "alerts": {
                "alertmanager_url": am.url,
                "evaluate_interval_s": 0.2,
                "resend_interval_s": 2.0,
                "startup_grace_s": 0.5,
                "metrics_port": 0,
                "client_id": f"alerts-test-{free_port()}",
            },
        },
        "test",
        environ={},
    )
    async with running(AlertService(cfg)) as service:
        (tracker,) = service.rooms[("s", "a")].trackers.values()
        assert tracker.started is not None and tracker.started <= datetime.now(UTC)
        await until(lambda: bool(active(am, "a")), 15, "resumed in Alertmanager")
        (alert,) = active(am, "a")
        assert alert["startsAt"] < "2027"
        pub.publish(*co2("s", "a", 600))
        await until(lambda: bool(hook.alerts("resolved")), 15, "the resolution arrives")
        await asyncio.sleep(1)
        assert not active(am, "a"), "nothing stays active"


def test_a_broker_out_of_reach_is_waiting_not_failing(tmp_path: Path):
    """No broker yet (it starts after the service, or restarts): /healthz says 200 with the
    reason, and the service connects once the broker is there."""
    metrics = free_port()
    late = Mosquitto(tmp_path / "late-broker")
    config = tmp_path / "central.toml"
    config.write_text(
        f'[mqtt]\nhost = "127.0.0.1"\nport = {late.port}\nreconnect_min_s = 0.2\n'
        f'[alerts]\nalertmanager_url = "http://127.0.0.1:{free_port()}"\n'
        f'metrics_port = {metrics}\nclient_id = "alerts-late"\n'
    )
    log = tmp_path / "alerts.log"
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "alerts", "-c", str(config)], stdout=fh, stderr=fh
        )
    try:
        wait_for(lambda: "lost the broker" in log.read_text(), 20, "it tries the broker")
        status, body = healthz(metrics)
        assert status == 200, body
        assert body["loops"]["mqtt"]["state"] in {"reconnecting", "connecting"}
        assert body["loops"]["evaluate"]["state"] == "waiting"
        late.start()
        try:
            wait_for(lambda: "subscribed to" in log.read_text(), 40, "it connects")
            wait_for(lambda: healthz(metrics)[1]["loops"]["mqtt"]["state"] == "connected", 10, "")
            assert stop(proc) == 0
        finally:
            late.stop()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert log.read_text().count("lost the broker") == 1, "an outage is said once"
