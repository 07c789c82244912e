"""Fixtures of the alert tests: a real Alertmanager whose webhook receiver is a server in the
test, and a publisher standing for the gateways."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.launch.alertmanager import Alertmanager, alertmanager_path
from gateway.launch.broker import Mosquitto
from tests.central.alerts.test_alerts import Webhook
from tests.central.util import Publisher


@pytest.fixture
def hook() -> Iterator[Webhook]:
    webhook = Webhook()
    yield webhook
    webhook.server.shutdown()
    webhook.server.server_close()


@pytest.fixture
def am(tmp_path: Path, hook: Webhook) -> Iterator[Alertmanager]:
    if alertmanager_path() is None:
        pytest.fail("alertmanager is required; run scripts/test (prometheus-alertmanager)")
    manager = Alertmanager(
        tmp_path / "alertmanager",
        f"""
route:
  receiver: it-support
  group_by: [alertname, site, room, target]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: it-support
    webhook_configs:
      - url: {hook.url}
        send_resolved: true
""",
    )
    manager.start()
    yield manager
    manager.stop()


@pytest.fixture
def pub(mosquitto: Mosquitto) -> Iterator[Publisher]:
    publisher = Publisher(mosquitto.port)
    yield publisher
    publisher.close()
