"""``learnroom check-config`` refuses what a service would choke on, naming file and field.

Each case is a file a careless operator could write; the real command must exit 1 with one
line that names the file and the field, and never print a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import ROOT

ROOM = '[room]\nsite = "s"\nroom = "r"\n'

CASES: dict[str, tuple[bytes, str]] = {
    # a wildcard prefix would make the agent publish under, and a service subscribe to, "#"
    "room-prefix-wildcard": (
        (ROOM + '[mqtt]\nprefix = "learnroom/#"\n').encode(),
        "mqtt.prefix",
    ),
    "central-prefix-plus": (b'[mqtt]\nprefix = "learnroom/+/v1"\n', "mqtt.prefix"),
    "central-prefix-empty-level": (b'[mqtt]\nprefix = "learnroom//v1"\n', "mqtt.prefix"),
    # inf passes "gt=0" and a loop then sleeps forever; nan compares false with everything
    "room-interval-nan": (
        (ROOM + "[agent]\nreport_interval_s = nan\n").encode(),
        "agent.report_interval_s",
    ),
    "central-interval-inf": (
        b"[alerts]\nevaluate_interval_s = inf\n",
        "alerts.evaluate_interval_s",
    ),
    "central-threshold-nan": (
        b"[alerts.rules.co2_ventilate]\nthreshold = nan\n",
        "alerts.rules.co2_ventilate.threshold",
    ),
    "central-influx-scheme": (
        b'[influx]\nurl = "ftp://db:8086"\ndatabase = "learnroom"\n',
        "influx.url",
    ),
    "central-alertmanager-scheme": (
        b'[alerts]\nalertmanager_url = "ftp://am:9093"\n',
        "alerts.alertmanager_url",
    ),
    "not-utf8": (b'[room]\nsite = "s\xff\xfe"\n', "not UTF-8"),
    "deeply-nested": (b"a = " + b"[" * 20000 + b"]" * 20000 + b"\n", "config.toml:"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_check_config_refuses_with_file_and_field_and_no_traceback(case: str, tmp_path: Path):
    content, where = CASES[case]
    path = tmp_path / "config.toml"
    path.write_bytes(content)
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 1, done.stdout
    assert "Traceback" not in done.stderr
    assert str(path) in done.stderr
    assert where in done.stderr
