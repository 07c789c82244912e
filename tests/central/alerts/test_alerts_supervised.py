"""The alert service's loops under supervision, between a real Mosquitto and a real
Alertmanager: an exception in one message or one pass is counted and the loop goes on; a loop
that ends makes ``run`` return 1; ``/healthz`` tells a blocked event loop from a waiting one.
Faults are planted by replacing one method of the service under test."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.central.alerts import service as service_module
from gateway.central.alerts.rules import RoomState
from gateway.central.alerts.service import AlertService
from gateway.launch.alertmanager import Alertmanager
from gateway.launch.broker import Mosquitto, free_port
from gateway.models import LockerData, make_envelope
from tests.central.alerts.test_alerts import Webhook, config, env_payload, running, until
from tests.central.util import Publisher


def errors(service: AlertService, loop: str) -> float:
    value = service.registry.get_sample_value("learnroom_alerts_errors_total", {"loop": loop})
    return value or 0.0


def locker_payload() -> tuple[str, bytes]:
    env = make_envelope("s", "a", LockerData(door_open=False, slots=[]), datetime.now(UTC), 1)
    return "learnroom/v1/s/a/lockers/tablets", env.model_dump_json().encode()


async def test_an_exception_in_one_message_or_one_pass_is_counted_and_the_loops_go_on(
    mosquitto: Mosquitto,
    am: Alertmanager,
    hook: Webhook,
    pub: Publisher,
    monkeypatch: pytest.MonkeyPatch,
):
    def broken(*args: Any) -> None:
        raise RuntimeError("a bug in one handler")

    monkeypatch.setattr(RoomState, "set_locker", broken)
    service = AlertService(config(mosquitto, am))
    original = service.evaluate_yielding
    calls = [0]

    async def fails_once() -> Any:
        calls[0] += 1
        if calls[0] == 3:
            raise RuntimeError("a bug in one pass")
        return await original()

    monkeypatch.setattr(service, "evaluate_yielding", fails_once)
    async with running(service):
        pub.publish(*locker_payload())
        await until(lambda: errors(service, "mqtt") == 1, 10, "the message's error is counted")
        pub.publish(*env_payload("s", "a", 1300))
        await until(lambda: hook.alerts("firing"), 15, "later messages and passes still work")
        assert errors(service, "evaluate") == 1
        assert all(h.ok for h in service.health()), service.health()


@pytest.mark.parametrize("how", ["returns", "raises"])
async def test_a_loop_that_ends_makes_the_service_return_non_zero(
    how: str,
    mosquitto: Mosquitto,
    am: Alertmanager,
    monkeypatch: pytest.MonkeyPatch,
):
    service = AlertService(config(mosquitto, am))

    async def ends(stop: asyncio.Event) -> None:
        await asyncio.sleep(0.5)
        if how == "raises":
            raise RuntimeError("the delivery loop died")

    monkeypatch.setattr(service, "_deliver_loop", ends)
    code = await asyncio.wait_for(service.run(asyncio.Event()), 15)
    assert code == 1
    (dead,) = [h for h in service.loop_health() if h.fatal]
    assert (dead.loop, dead.state) == ("alertmanager", "dead")


def healthz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_healthz_is_503_while_a_handler_blocks_the_event_loop_and_200_after(
    mosquitto: Mosquitto,
    am: Alertmanager,
    hook: Webhook,
    pub: Publisher,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(service_module, "BEAT_S", 0.1)
    monkeypatch.setattr(service_module, "BLOCKED_S", 2.0)
    metrics = free_port()
    service = AlertService(config(mosquitto, am, metrics_port=metrics))
    blocking = [True]

    def slow(self: RoomState, *args: Any) -> None:
        if blocking[0]:
            blocking[0] = False
            time.sleep(5)  # a handler that hangs, on the event loop

    monkeypatch.setattr(RoomState, "set_locker", slow)
    async with running(service):
        status, body = await asyncio.to_thread(healthz, metrics)
        assert status == 200, body
        assert set(body["loops"]) == {"mqtt", "evaluate", "alertmanager"}
        assert body["loops"]["mqtt"]["state"] == "connected"
        # the probe is a thread of its own: it runs while the handler blocks the event loop
        probe = asyncio.get_running_loop().run_in_executor(None, _probe_until_503, metrics)
        pub.publish(*locker_payload())
        status, body = await probe
        assert status == 503, body
        assert body["loops"]["event_loop"]["state"] == "stuck"
        await until(lambda: healthz(metrics)[0] == 200, 10, "healthy again")
        pub.publish(*env_payload("s", "a", 1300))
        await until(lambda: hook.alerts("firing"), 15, "still alerting")


def _probe_until_503(port: int) -> tuple[int, dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        status, body = healthz(port)
        if status == 503 or time.monotonic() > deadline:
            return status, body
        time.sleep(0.2)
