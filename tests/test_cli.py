"""The commands as a user runs them: demo, discover, and the agent under systemd."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.agent.discovery import Advertiser
from gateway.launch.broker import Mosquitto
from tests.paths import ROOT


def run(*args: str, timeout: float = 60, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


@pytest.mark.parametrize("broker", ["mosquitto", "amqtt"])
def test_demo_shows_every_room_live(broker: str):
    done = run(
        "demo",
        "--broker",
        broker,
        "--rooms",
        "3",
        "--sites",
        "2",
        "--duration",
        "8",
        "--no-table",
        "--mqtt-port",
        "0",
        "--port",
        "0",
        "--log-level",
        "WARNING",
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "broker at mqtt://127.0.0.1:" in out
    for room in (
        "stadtbuecherei/lernraum-1",
        "gesamtschule-n/lernraum-1",
        "stadtbuecherei/lernraum-2",
    ):
        assert room in out, out
    assert out.count("online") == 3, "every gateway announced itself over MQTT"
    assert out.count("°C") == 3, "environment readings reached the table over MQTT"
    assert out.count("dBm") == 3, "and Wi-Fi readings"
    assert "ingest: writing to InfluxDB at http://127.0.0.1:" in out
    written = re.search(r"ingest: (\d+) messages received, (\d+) points written", out)
    assert written, out
    assert int(written.group(2)) > int(written.group(1)) > 50
    assert "0 rejected" in out
    assert "display: http://127.0.0.1:" in out


async def test_discover_lists_an_advertised_gateway():
    adv = Advertiser(
        "site-x", "room-9", "1.2.3", interfaces=["127.0.0.1"], addresses=["127.0.0.1"], port=1
    )
    task = asyncio.create_task(adv.run())
    try:
        await asyncio.sleep(0.5)
        done = await asyncio.to_thread(
            run, "discover", "--json", "--timeout", "2", "--interface", "127.0.0.1"
        )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert {"site": "site-x", "room": "room-9", "version": "1.2.3"} in [
        f["properties"] for f in found
    ]


def test_agent_tells_systemd_ready_and_feeds_the_watchdog(mosquitto: Mosquitto, tmp_path: Path):
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(1)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "agent",
            "--simulate",
            "--site",
            "s",
            "--room",
            "r",
            "--mqtt",
            mosquitto.url,
            "--state-dir",
            str(tmp_path / "state"),
            "--log-level",
            "ERROR",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "NOTIFY_SOCKET": str(sock_path),
            "WATCHDOG_USEC": "400000",
        },
    )
    got: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and got.count("WATCHDOG=1") < 3:
            with contextlib.suppress(TimeoutError):
                got.append(sock.recv(100).decode())
    finally:
        proc.terminate()
        proc.wait(20)
        with contextlib.suppress(TimeoutError):
            while True:
                got.append(sock.recv(100).decode())
        sock.close()
    assert got[0] == "READY=1"
    assert got.count("WATCHDOG=1") >= 3
    assert "STOPPING=1" in got, "a clean stop is announced"
    assert proc.returncode == 0
