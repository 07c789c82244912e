"""The display's loops under supervision, in process against a real Mosquitto: a message that
meets a bug is counted and skipped, a hung loop turns ``/healthz`` to 503 and asks the process
to exit, a loop that fails is started again. (Apart from the page tests: Playwright's sync API
holds this thread's event loop for its module.)"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from gateway.central.config import parse_central
from gateway.central.display.health import Beat
from gateway.central.display.hub import Hub
from gateway.central.display.loops import supervise
from gateway.central.display.service import create_app
from gateway.launch.broker import Mosquitto, free_port
from gateway.models import OccupancyData, make_envelope
from tests.central.display.test_display import room_state
from tests.central.display.test_faults import healthz
from tests.central.util import Publisher, wait_for


class _Buggy(Hub):
    """A hub that meets a bug on one room's messages (the check no longer raises, so a bug
    is what is left), or hangs on another's."""

    def on_message(self, topic: str, payload: bytes, *, retained: bool = False) -> bool:
        if "/boom/" in topic:
            raise RuntimeError("a bug met by one message")
        if "/hang/" in topic:
            time.sleep(3)  # blocks the event loop, as a hung handler would
        return super().on_message(topic, payload, retained=retained)


def _hub(mosquitto: Mosquitto, metrics_port: int, **display: object) -> _Buggy:
    raw = {
        "mqtt": {"host": "127.0.0.1", "port": mosquitto.port},
        "display": {"metrics_port": metrics_port, "client_id": f"d-{metrics_port}"} | display,
    }
    return _Buggy(parse_central(raw, "test", environ={}))


async def test_a_message_that_meets_a_bug_is_counted_and_the_loop_goes_on(
    mosquitto: Mosquitto, pub: Publisher
):
    port = free_port()
    hub = _hub(mosquitto, port)
    app = create_app(hub)
    async with app.router.lifespan_context(app):
        await asyncio.to_thread(
            wait_for, lambda: hub.beats["mqtt"].state == "connected", 10, "subscribed"
        )
        occ = OccupancyData(people=1, occupied=True, capacity=4)
        payload = make_envelope("a", "boom", occ, datetime.now(UTC), 1).model_dump_json()
        pub.publish("learnroom/v1/a/boom/occupancy", payload.encode())
        pub.publish("learnroom/v1/a/boom/occupancy", payload.encode())
        room_state(pub, "a", "fine", people=2, co2=500)  # after the bad ones
        await asyncio.to_thread(wait_for, lambda: ("a", "fine") in hub.views, 10, "goes on")
        errors = hub.registry.get_sample_value(
            "learnroom_display_handling_errors_total", {"error": "RuntimeError"}
        )
        assert errors == 2
        status, body = await asyncio.to_thread(healthz, f"http://127.0.0.1:{port}/healthz")
        assert (status, body["loops"]["mqtt"]["state"]) == (200, "connected")


async def test_a_hung_loop_is_503_and_asks_the_process_to_exit(
    mosquitto: Mosquitto, pub: Publisher
):
    port = free_port()
    hub = _hub(mosquitto, port, stuck_after_s=1)
    asked = threading.Event()
    hub.on_exit = asked.set
    app = create_app(hub)
    async with app.router.lifespan_context(app):
        await asyncio.to_thread(
            wait_for, lambda: hub.beats["mqtt"].state == "connected", 10, "subscribed"
        )
        url = f"http://127.0.0.1:{port}/healthz"
        assert (await asyncio.to_thread(healthz, url))[0] == 200
        pub.publish("learnroom/v1/a/hang/status", b"{}")

        def stuck() -> tuple[int, dict]:  # from a thread: the event loop hangs meanwhile
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                status, body = healthz(url)
                # the ticker may be found stuck a moment before the MQTT loop itself
                if status != 200 and body["loops"]["mqtt"]["state"] == "stuck":
                    return status, body
                time.sleep(0.1)
            raise AssertionError("/healthz never said the loop is stuck")

        status, body = await asyncio.to_thread(stuck)
        assert (status, body["status"], body["loops"]["mqtt"]["state"]) == (503, "failing", "stuck")
        await asyncio.to_thread(asked.wait, 10)
        assert hub.exit_code == 1


async def test_a_loop_that_fails_is_started_again_and_counted():
    hub = Hub(parse_central({"display": {"metrics_port": 0}}, "test", environ={}))
    stop = asyncio.Event()
    beat = Beat("ticker")
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("first run fails")
        beat.tick("running")
        await stop.wait()

    task = asyncio.create_task(supervise(hub, beat, flaky, stop))
    await asyncio.wait_for(_until(lambda: beat.state == "running"), 10)
    assert runs == 2 and beat.failures == 1
    assert (
        hub.registry.get_sample_value("learnroom_display_loop_restarts_total", {"loop": "ticker"})
        == 1
    )
    stop.set()
    await task


async def _until(cond: Callable[[], bool]) -> None:
    while not cond():
        await asyncio.sleep(0.05)
