"""The shipped alertmanager.yml is valid and routes as its comments say (Alertmanager's amtool)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.paths import ROOT

CONFIG = ROOT / "deploy" / "central" / "alertmanager.yml"


def amtool(*args: str) -> str:
    binary = shutil.which("amtool")
    if binary is None:
        pytest.fail("amtool is required; run scripts/test (prometheus-alertmanager)")
    done = subprocess.run([binary, *args], capture_output=True, text=True, check=False, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def test_the_example_config_is_valid():
    assert "SUCCESS" in amtool("check-config", str(CONFIG))


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        ({"rule": "gateway_offline", "severity": "critical"}, "it-support-chat,it-support-mail"),
        ({"rule": "co2_critical", "severity": "critical"}, "it-support-chat,it-support-mail"),
        ({"rule": "co2_ventilate", "severity": "warning"}, "nord-coordinators"),
        ({"rule": "device_overdue", "severity": "warning"}, "nord-coordinators"),
        ({"rule": "wifi_degraded", "severity": "warning"}, "it-support-mail"),
        ({"rule": "device_not_charging", "severity": "info"}, "it-support-mail"),
    ],
)
def test_routing_by_severity_and_site(labels: dict[str, str], receivers: str):
    pairs = labels | {"alertname": labels["rule"], "site": "gesamtschule-nord", "room": "r1"}
    args = [f"{k}={v}" for k, v in pairs.items()]
    assert amtool("config", "routes", "test", f"--config.file={CONFIG}", *args) == receivers
    # the same rule in a site without its own coordinators goes to IT support
    if receivers == "nord-coordinators":
        other = [a.replace("gesamtschule-nord", "stadtteil-ost") for a in args]
        assert amtool("config", "routes", "test", f"--config.file={CONFIG}", *other) == (
            "it-support-mail"
        )
