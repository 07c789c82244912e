"""The link against brokers that misbehave: refusals, early closes, flapping, a twin gateway.

A fake broker on loopback (``tests/fake_broker.py``) does exactly one odd thing per test; the
twin gateway runs against a real Mosquitto, which takes the session from one agent for the
other the way it does in the field.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.agent.config import RoomConfig, parse_room_config
from gateway.agent.link import TWIN_FAULT
from gateway.agent.outbox import Outbox
from gateway.agent.runner import Agent
from gateway.agent.sources.health import HealthSource
from gateway.clock import RealClock
from gateway.launch.broker import Mosquitto
from tests.fake_broker import FakeBroker
from tests.mqtt_util import Collector
from tests.paths import ROOT

SITE, ROOM = "link-site", "room-1"
PREFIX = f"learnroom/v1/{SITE}/{ROOM}"


def room_config(port: int, state: Path, **mqtt: Any) -> RoomConfig:
    return parse_room_config(
        {
            "room": {"site": SITE, "room": ROOM, "capacity": 20},
            "mqtt": {"host": "127.0.0.1", "port": port, "username": "gw", **mqtt},
            "outbox": {
                "path": str(state / "outbox.sqlite"),
                "commit_interval_s": 0.05,
                "replay_jitter_s": 0,
            },
        },
        "test",
        environ={},
    )


async def wait(pred: Any, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.02)


class Running:
    """An agent with its outbox, run as a task; stopped cleanly on the way out."""

    def __init__(self, config: RoomConfig, *, health_s: float | None = None) -> None:
        self.outbox = Outbox(config.outbox.path, config.outbox.max_messages)
        self.outbox.open()
        self.agent = Agent(config, self.outbox, [], RealClock())
        if health_s is not None:
            self.agent.sources.append(
                HealthSource(
                    health_s,
                    RealClock(),
                    outbox_stats=self.agent.outbox_stats,
                    faults=lambda: self.agent.faults,
                    disk_path=config.outbox.path.parent,
                )
            )
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.agent.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.agent.stop()
        await asyncio.wait_for(self.task, 20)
        self.outbox.close()

    def births(self) -> int:
        rows = self.outbox.rows_after(-1, self.outbox.committed_seq, 100_000)
        return sum(
            r.topic.endswith("/status") and json.loads(r.payload)["data"]["online"] for r in rows
        )


def said(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


@pytest.mark.parametrize(
    ("protocol", "code"),
    [("3.1.1", 4), ("3.1.1", 5), ("5", 0x86), ("5", 0x87), ("5", 0x8C)],
)
async def test_refused_credentials_wait_auth_retry_and_are_said_once(
    state_dir: Path, caplog: pytest.LogCaptureFixture, protocol: str, code: int
):
    async with FakeBroker(connack=code) as broker:
        config = room_config(
            broker.port, state_dir, protocol=protocol, reconnect_min_s=0.05, auth_retry_s=60
        )
        async with Running(config) as run:
            link = run.agent.link
            await wait(lambda: link.stats.waits)
            assert list(link.stats.waits) == [("auth", 60.0)]
            assert len(broker.connects) == 1
    lines = said(caplog, "check mqtt.username")
    assert len(lines) == 1, lines
    assert "refused user 'gw'" in lines[0]


@pytest.mark.parametrize(("protocol", "code"), [("3.1.1", 3), ("5", 0x88)])
async def test_server_unavailable_is_retried_with_backoff_not_as_auth(
    state_dir: Path, caplog: pytest.LogCaptureFixture, protocol: str, code: int
):
    async with FakeBroker(connack=code) as broker:
        config = room_config(
            broker.port, state_dir, protocol=protocol, reconnect_min_s=0.05, reconnect_max_s=0.2
        )
        async with Running(config) as run:
            await broker.wait_connects(3)
            assert run.agent.link.stats.auth_failures == 0
    assert not said(caplog, "mqtt.username")


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_broker_closing_after_connack_is_a_drop_not_bad_credentials(
    state_dir: Path, caplog: pytest.LogCaptureFixture, protocol: str
):
    # the case: the first publish fails with paho's "not connected" 4, which is also
    # the 3.1.1 CONNACK code for bad credentials
    async with FakeBroker(close_after_s=0) as broker:
        config = room_config(
            broker.port,
            state_dir,
            protocol=protocol,
            reconnect_min_s=0.05,
            reconnect_max_s=0.2,
            auth_retry_s=300,
        )
        async with Running(config) as run:
            await broker.wait_connects(3)
            stats = run.agent.link.stats
            assert stats.auth_failures == 0
            assert stats.waits
            assert all(kind == "dropped" and wait <= 0.2 for kind, wait in stats.waits)
            assert not stats.twin, "no PUBACK ever came: nothing says a twin is there"
    assert not said(caplog, "mqtt.username")
    assert len(said(caplog, "closed the connection")) == 1, "said once, not per reconnect"


async def test_flapping_broker_backs_off_and_queues_one_birth(state_dir: Path):
    """Closes 0.3 s after each CONNACK: a CONNACK alone must not reset the backoff."""
    async with FakeBroker(close_after_s=0.3) as broker:
        config = room_config(broker.port, state_dir, reconnect_min_s=1.0, reconnect_max_s=60)
        async with Running(config) as run:
            await broker.wait_connects(1)
            await asyncio.sleep(10)  # the window the connects are counted in
            connects = len(broker.connects)
            waits = [w for _, w in run.agent.link.stats.waits]
            births = run.births()
    # without backoff: a connect every 0.8-1.3 s; with it 1, 2, 4, 8 s: at most five
    assert connects <= 6, connects
    assert waits == sorted(waits), "each wait at least as long as the one before"
    assert births <= 1, f"{births} births queued for one gateway"


async def test_session_taken_over_is_reported_as_twin_and_backed_off(
    state_dir: Path, caplog: pytest.LogCaptureFixture
):
    async with FakeBroker(close_after_s=0.2, disconnect_reason=0x8E, puback=True) as broker:
        config = room_config(
            broker.port, state_dir, protocol="5", reconnect_min_s=0.05, twin_backoff_s=30
        )
        async with Running(config) as run:
            link = run.agent.link
            await wait(lambda: link.stats.waits)
            kind, wait_s = link.stats.waits[0]
            assert kind == "taken-over"
            assert 15 <= wait_s <= 30
            assert TWIN_FAULT in run.agent.faults
    lines = said(caplog, "another gateway is using client id learnroom-link-site-room-1")
    assert len(lines) == 1, lines
    assert "cloned SD card" in lines[0]


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_twin_gateways_back_off_and_say_so_in_health(
    mosquitto: Mosquitto, tmp_path: Path, protocol: str
):
    """Two agents with the same site/room (a cloned SD card) against a real Mosquitto."""
    twins = []
    for name in ("a", "b"):
        state = tmp_path / name
        state.mkdir()
        config = room_config(
            mosquitto.port,
            state,
            username=None,
            protocol=protocol,
            reconnect_min_s=0.05,
            reconnect_max_s=0.5,
            twin_backoff_s=4,
        )
        twins.append(Running(config, health_s=0.3))
    with Collector(mosquitto.port, f"{PREFIX}/health") as sub:
        async with twins[0] as a, twins[1] as b:
            await wait(lambda: a.agent.link.stats.twin and b.agent.link.stats.twin, 60)
            before = a.agent.link.stats.connects + b.agent.link.stats.connects
            await asyncio.sleep(8)  # the window the takeovers are counted in
            during = a.agent.link.stats.connects + b.agent.link.stats.connects - before
            await asyncio.to_thread(
                sub.wait_for,
                lambda ms: any(TWIN_FAULT in m.json["data"]["faults"] for m in ms),
                30,
                "a health message naming the twin",
            )
    # each waits 2-4 s after losing the session: at most about 4 connects each in 8 s,
    # where fighting at the normal backoff would reconnect several times a second
    assert during <= 10, during


async def test_a_broker_restarted_again_and_again_is_not_taken_for_a_twin(
    mosquitto: Mosquitto, tmp_path: Path
):
    """Each restart closes the session soon after a message was acknowledged, as a takeover
    does; but the broker is then away for a moment, which a twin's broker never is."""
    config = room_config(
        mosquitto.port, tmp_path, username=None, reconnect_min_s=0.05, reconnect_max_s=0.3
    )
    async with Running(config, health_s=0.2) as running:
        link = running.agent.link
        for _ in range(4):
            published = link.stats.published
            await wait(lambda n=published: link.stats.connected and link.stats.published > n, 30)
            await asyncio.to_thread(mosquitto.stop)
            await asyncio.sleep(1.5)  # down long enough for a refused reconnect
            await asyncio.to_thread(mosquitto.start)
        await wait(lambda: link.stats.connected, 30)
        assert not link.stats.twin
        assert TWIN_FAULT not in running.agent.faults


# -- mDNS: a demo on a school laptop must not announce rooms on the school's LAN -------------
# Multicast does not reach this machine's own browser on every CI host, so the agent's own
# word is what the tests read: the line it logs when it decides, and the one when it registers.

ADVERTISED = f"advertising {SITE}-{ROOM}."
NO_MULTICAST = "cannot advertise over mDNS"
NOT_ADVERTISED = "not advertising this gateway over mDNS"


async def agent_log_until(args: list[str], wanted: tuple[str, ...]) -> str:
    """Run ``learnroom agent``, read its log until a line holds one of ``wanted``, stop it
    with SIGTERM and return everything it logged."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "agent",
        *args,
        "--log-level",
        "INFO",
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(60):
            while not any(w in line for line in seen for w in wanted):
                line = (await proc.stderr.readline()).decode()
                assert line, "the agent ended early:\n" + "".join(seen)
                seen.append(line)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = await proc.communicate()
    return "".join(seen) + rest.decode()


def simulate_args(mosquitto: Mosquitto, state: Path) -> list[str]:
    return [
        "--simulate",
        "--site",
        SITE,
        "--room",
        ROOM,
        "--mqtt",
        mosquitto.url,
        "--state-dir",
        str(state),
    ]


async def test_simulated_room_does_not_advertise_by_default(mosquitto: Mosquitto, state_dir: Path):
    log = await agent_log_until(
        simulate_args(mosquitto, state_dir), ("connected to broker", ADVERTISED, NO_MULTICAST)
    )
    assert NOT_ADVERTISED in log
    assert ADVERTISED not in log
    assert NO_MULTICAST not in log


async def test_simulated_room_advertises_when_asked(mosquitto: Mosquitto, state_dir: Path):
    log = await agent_log_until(
        [*simulate_args(mosquitto, state_dir), "--advertise"], (ADVERTISED, NO_MULTICAST)
    )
    assert NOT_ADVERTISED not in log


async def test_real_room_keeps_advertising_as_configured(mosquitto: Mosquitto, tmp_path: Path):
    config = tmp_path / "room.toml"
    config.write_text(
        f'[room]\nsite = "{SITE}"\nroom = "{ROOM}"\ncapacity = 10\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n'
        f'[outbox]\npath = "{tmp_path / "outbox.sqlite"}"\n'
    )
    log = await agent_log_until(["-c", str(config)], (ADVERTISED, NO_MULTICAST))
    assert NOT_ADVERTISED not in log


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway")
