"""Our aiomqtt ``Client`` against a real Mosquitto killed mid-publish: a dropped connection
leaves no asyncio error behind ("add_writer ... Bad file descriptor", "Future exception was
never retrieved"), while the drop itself still reaches the caller as an ``MqttError``."""

from __future__ import annotations

import asyncio
import gc
import logging

import aiomqtt
import pytest

from gateway.agent.mqttclient import Client
from gateway.launch.broker import Mosquitto

ROUNDS = 10


async def _publish_until_dropped(port: int, broker: Mosquitto) -> int:
    drops = 0
    for _ in range(ROUNDS):
        try:
            async with Client(
                "127.0.0.1", port, identifier="drop-test", max_inflight_messages=32
            ) as c:
                async with asyncio.TaskGroup() as tg:
                    for _ in range(32):
                        tg.create_task(_flood(c))
                    await asyncio.sleep(0.5)
                    assert broker.proc is not None
                    broker.proc.kill()
        except* aiomqtt.MqttError:
            drops += 1
        broker.stop()  # reaps the killed broker and closes its pipe
        broker.start()
    return drops


async def _flood(client: aiomqtt.Client) -> None:
    while True:
        await client.publish("drop/test", b"x" * 300, qos=1, timeout=5)


def test_a_dropped_connection_leaves_no_asyncio_errors(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="asyncio")
    drops = asyncio.run(_publish_until_dropped(mosquitto.port, mosquitto))
    gc.collect()  # "never retrieved" is said when the future is collected
    assert drops == ROUNDS, "each drop reached the caller"
    errors = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert errors == []
