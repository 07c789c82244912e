"""The alert service between a real Mosquitto and a real Alertmanager, whose webhook receiver
is an HTTP server inside the test: what IT support would get, notification by notification."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from gateway.central.alerts.service import AlertService
from gateway.central.config import CentralConfig, parse_central
from gateway.launch.alertmanager import Alertmanager
from gateway.launch.broker import Mosquitto, free_port
from gateway.models import (
    EnvironmentData,
    EventData,
    LockerData,
    SlotState,
    StatusData,
    make_envelope,
)
from tests.central.util import Publisher, wait_for
from tests.mqtt_util import Collector


class Webhook:
    """Alertmanager's webhook receiver: every notification, as Alertmanager sent it."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.notifications.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hook"

    def alerts(self, status: str | None = None, **labels: str) -> list[dict[str, Any]]:
        """Every alert in every notification, optionally of one status and with labels."""
        return [
            a
            for n in self.notifications
            for a in n["alerts"]
            if (status is None or a["status"] == status)
            and all(a["labels"].get(k) == v for k, v in labels.items())
        ]


def config(mosquitto: Mosquitto, am: Alertmanager, **alerts: Any) -> CentralConfig:
    fast = {
        "co2_ventilate": {"for_s": 1.0},
        "co2_critical": {"for_s": 1.0},
        "locker_door_open": {"after_s": 1.0},
    }
    return parse_central(
        {
            "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
            "alerts": {
                "alertmanager_url": am.url,
                "grafana_url": "https://grafana.example",
                "evaluate_interval_s": 0.2,
                "resend_interval_s": 2.0,
                "startup_grace_s": 0.5,
                "metrics_port": 0,
                "client_id": f"alerts-test-{free_port()}",
                "rules": fast,
            }
            | alerts,
        },
        "test",
        environ={},
    )


@contextlib.asynccontextmanager
async def running(service: AlertService) -> AsyncIterator[AlertService]:
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await asyncio.sleep(1.0)  # connected, subscribed, through the start-up grace
    try:
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def env_payload(site: str, room: str, co2: float) -> tuple[str, bytes]:
    env = make_envelope(
        site, room, EnvironmentData(co2_ppm=co2, temperature_c=21.0), datetime.now(UTC), 1
    )
    return f"learnroom/v1/{site}/{room}/environment", env.model_dump_json().encode()


async def until(cond: Any, timeout: float, what: str) -> None:
    await asyncio.to_thread(wait_for, cond, timeout, what)


async def test_co2_fires_with_its_labels_then_resolves(
    mosquitto: Mosquitto, am: Alertmanager, hook: Webhook, pub: Publisher
):
    with Collector(mosquitto.port, "learnroom/v1/+/+/alerts/#") as seen:
        async with running(AlertService(config(mosquitto, am))):
            pub.publish(*env_payload("bibliothek", "raum-1", 1250))
            await until(lambda: hook.alerts("firing"), 15, "Alertmanager notifies")
            (alert,) = hook.alerts("firing")
            assert alert["labels"] == {
                "alertname": "co2_ventilate",
                "rule": "co2_ventilate",
                "site": "bibliothek",
                "room": "raum-1",
                "severity": "warning",
            }
            assert "1250 ppm" in alert["annotations"]["summary"]
            assert "lüften" in alert["annotations"]["summary_de"]
            assert alert["annotations"]["dashboard"] == (
                "https://grafana.example/d/learnroom-room?var-site=bibliothek&var-room=raum-1"
            )
            retained = [m for m in seen.messages if m.payload]
            assert len(retained) == 1
            assert retained[0].topic == "learnroom/v1/bibliothek/raum-1/alerts/co2_ventilate"
            assert retained[0].json["data"]["firing"] is True

            pub.publish(*env_payload("bibliothek", "raum-1", 700))
            await until(lambda: hook.alerts("resolved"), 15, "the resolution arrives")
            (resolved,) = hook.alerts("resolved")
            assert resolved["labels"] == alert["labels"]
            assert resolved["startsAt"] == alert["startsAt"]
            await until(lambda: not seen.messages[-1].payload, 5, "the topic is cleared")


async def test_a_wobbling_value_makes_one_alert_not_many(
    mosquitto: Mosquitto, am: Alertmanager, hook: Webhook, pub: Publisher
):
    async with running(AlertService(config(mosquitto, am))):
        pub.publish(*env_payload("s", "a", 1100))
        await until(lambda: hook.alerts("firing"), 15, "it fires")
        for co2 in (980, 1100, 985, 1050, 990, 1010):  # around 1000, above the 950 clear
            pub.publish(*env_payload("s", "a", co2))
            await asyncio.sleep(1.5)  # longer than for_s and Alertmanager's group_interval
        assert not hook.alerts("resolved")
        pub.publish(*env_payload("s", "a", 800))
        await until(lambda: hook.alerts("resolved"), 15, "it resolves")
        await asyncio.sleep(2)
    assert len(hook.alerts("firing")) == 1
    assert len(hook.alerts("resolved")) == 1


async def test_a_restart_while_firing_neither_repeats_nor_forgets(
    mosquitto: Mosquitto, am: Alertmanager, hook: Webhook, pub: Publisher
):
    cfg = config(mosquitto, am)
    with Collector(mosquitto.port, "learnroom/v1/+/+/alerts/#") as seen:
        async with running(AlertService(cfg)) as first:
            pub.publish(*env_payload("s", "a", 2400))
            await until(lambda: len(hook.alerts("firing")) == 2, 15, "both CO2 alerts fire")
            since = {k: t.firing_since for k, t in first.rooms[("s", "a")].trackers.items()}
        published = len(seen.messages)
        async with running(AlertService(cfg)) as second:
            await asyncio.sleep(3)  # past a resend interval
            resumed = {k: t.firing_since for k, t in second.rooms[("s", "a")].trackers.items()}
            assert resumed == since, "the new process carries on with the old startsAt"
            assert len(seen.messages) == published, "nothing was announced again over MQTT"
            pub.publish(*env_payload("s", "a", 600))
            await until(lambda: len(hook.alerts("resolved")) == 2, 15, "both resolve")
    assert len(hook.alerts("firing")) == 2
    starts = {a["labels"]["rule"]: a["startsAt"] for a in hook.alerts("firing")}
    for a in hook.alerts("resolved"):
        assert a["startsAt"] == starts[a["labels"]["rule"]]


async def test_maintenance_silences_exactly_its_room(
    mosquitto: Mosquitto, am: Alertmanager, hook: Webhook, pub: Publisher
):
    now = datetime.now(UTC)
    window = {"site": "s", "room": "b", "start": now - timedelta(hours=1)}
    cfg = config(
        mosquitto,
        am,
        maintenance=[window | {"end": now + timedelta(hours=1), "reason": "new access point"}],
    )
    async with running(AlertService(cfg)):
        for room in ("a", "b", "c"):
            pub.publish(*env_payload("s", room, 1300))
        await until(lambda: len(hook.alerts("firing")) == 2, 15, "two rooms fire")
        await asyncio.sleep(3)
    assert sorted(a["labels"]["room"] for a in hook.alerts("firing")) == ["a", "c"]


async def test_gateway_offline_and_locker_alerts(
    mosquitto: Mosquitto, am: Alertmanager, hook: Webhook, pub: Publisher
):
    now = datetime.now(UTC)

    def send(kind: str, data: Any, sub: str = "", retain: bool = False) -> None:
        env = make_envelope("s", "a", data, datetime.now(UTC), None)
        topic = f"learnroom/v1/s/a/{kind}" + (f"/{sub}" if sub else "")
        pub.client.publish(topic, env.model_dump_json(), qos=1, retain=retain).wait_for_publish()

    async with running(AlertService(config(mosquitto, am))):
        slots = [SlotState(slot="1", present=False), SlotState(slot="2", present=True)]
        send("lockers", LockerData(door_open=True, slots=slots), "tablets")
        due = now - timedelta(hours=2)
        send("events", EventData(type="overdue", locker="tablets", slot="1", due=due))
        await until(
            lambda: (
                {a["labels"]["rule"] for a in hook.alerts("firing")}
                >= {"locker_door_open", "device_overdue"}
            ),
            15,
            "door and overdue alerts",
        )
        (overdue,) = hook.alerts("firing", rule="device_overdue")
        assert overdue["labels"]["target"] == "tablets/1"
        # the tablet comes back, the door shuts
        slots[0] = SlotState(slot="1", present=True, charging=True)
        send("lockers", LockerData(door_open=False, slots=slots), "tablets")
        await until(lambda: len(hook.alerts("resolved")) == 2, 15, "both resolve")

        # the broker publishes the gateway's Last Will
        send("status", StatusData(online=False), retain=True)
        await until(
            lambda: hook.alerts("firing", rule="gateway_offline", severity="critical"),
            15,
            "gateway offline",
        )


def test_what_alertmanager_is_sent_on_fire_resend_and_resolve():
    """No services: the service's own clock, messages fed in, the payloads looked at."""
    now = [datetime(2026, 11, 23, 9, 0, tzinfo=UTC)]
    cfg = parse_central(
        {"alerts": {"rules": {"co2_ventilate": {"for_s": 60}}, "resend_interval_s": 60}},
        "x",
        environ={},
    )
    service = AlertService(cfg, clock=lambda: now[0])

    def tick(seconds: float, co2: float) -> tuple[list[Any], list[Any]]:
        now[0] += timedelta(seconds=seconds)
        env = make_envelope("s", "a", EnvironmentData(co2_ppm=co2), now[0], 1)
        service.on_message("learnroom/v1/s/a/environment", env.model_dump_json().encode())
        return service.evaluate()

    assert tick(0, 1500) == ([], [])
    assert tick(30, 1500) == ([], []), "pending: not yet 60 s"
    fired, _ = tick(30, 1500)
    (room, key, tracker) = fired[0]
    sent = service.am_alert(room, tracker, resolved_at=None)
    assert key == "co2_ventilate"
    assert sent["startsAt"] == "2026-11-23T09:00:00.000Z", "from when it turned bad"
    assert sent["endsAt"] == "2026-11-23T09:05:00.000Z", "four resend intervals ahead"
    topic, payload = service.envelope(room, key, tracker, firing=True)
    assert topic == "learnroom/v1/s/a/alerts/co2_ventilate"
    assert json.loads(payload)["data"]["since"] == "2026-11-23T09:00:00.000Z"
    _, resolved = tick(30, 600)
    (room, key, tracker) = resolved[0]
    done = service.am_alert(room, tracker, resolved_at=now[0])
    assert (done["startsAt"], done["endsAt"]) == (
        "2026-11-23T09:00:00.000Z",
        "2026-11-23T09:01:30.000Z",
    )


async def test_alerts_are_written_to_influxdb_as_they_fire_and_resolve(influxd):
    from gateway.central.writers import InfluxV1Writer

    now = [datetime.now(UTC) - timedelta(minutes=10)]
    cfg = parse_central(
        {"alerts": {"alertmanager_url": None, "rules": {"co2_critical": {"for_s": 0}}}},
        "x",
        environ={},
    )
    service = AlertService(
        cfg, writer=InfluxV1Writer(influxd.url, "learnroom"), clock=lambda: now[0]
    )

    async def tick(co2: float) -> None:
        now[0] += timedelta(minutes=1)
        env = make_envelope("s", "a", EnvironmentData(co2_ppm=co2), now[0], 1)
        service.on_message("learnroom/v1/s/a/environment", env.model_dump_json().encode())
        await service.deliver(*service.evaluate())

    await tick(2600)
    await tick(500)
    res = influxd.query(
        "SELECT firing, message FROM alert WHERE rule = 'co2_critical' GROUP BY *", "learnroom"
    )
    (series,) = res["results"][0]["series"]
    tags = {"site": "s", "room": "a", "rule": "co2_critical", "severity": "critical"}
    assert series["tags"] == tags
    assert [row[1] for row in series["values"]] == [True, False]
    assert "2600 ppm" in series["values"][0][2]
