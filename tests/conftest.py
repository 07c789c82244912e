"""Real services from fixtures, on free loopback ports in temp dirs.

A missing service is a failure, never a skip: the test command (scripts/test) installs them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.launch.broker import Mosquitto, mosquitto_path
from gateway.launch.influxd import Influxd


def _require(binary: str | None, name: str, package: str) -> str:
    if binary is None:
        pytest.fail(
            f"{name} is required for this test and is not installed; run scripts/test "
            f"(it installs the Debian package {package!r})"
        )
    return binary


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A fresh Mosquitto per test: no retained state leaks between tests."""
    _require(mosquitto_path(), "mosquitto", "mosquitto")
    broker = Mosquitto(tmp_path / "mosquitto")
    with broker.running():
        yield broker


@pytest.fixture
def influxd(tmp_path: Path) -> Iterator[Influxd]:
    """A fresh InfluxDB 1.x per test with an empty ``learnroom`` database."""
    _require(shutil.which("influxd"), "influxd", "influxdb")
    server = Influxd(tmp_path / "influxdb")
    server.start()
    server.query("CREATE DATABASE learnroom")
    yield server
    server.stop()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


@pytest.fixture(autouse=True)
def _no_secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests must not pick up a developer's LEARNROOM_* secrets."""
    for var in list(os.environ):
        if var.startswith("LEARNROOM_"):
            monkeypatch.delenv(var)
