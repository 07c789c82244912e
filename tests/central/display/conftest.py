"""Fixtures of the display's tests: a publisher on the test's broker, Debian's Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from gateway.launch.broker import Mosquitto
from tests.central.util import Publisher

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def pub(mosquitto: Mosquitto) -> Iterator[Publisher]:
    publisher = Publisher(mosquitto.port)
    yield publisher
    publisher.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is required; run scripts/test (Debian package chromium)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Playwright and urllib talk to 127.0.0.1 directly, whatever the environment says."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
