"""``learnroom ingest`` as a process against an InfluxDB that answers wrongly or not at all.

Whatever the answer, the process either keeps its writer going (holding every message
unacknowledged, saying so in the log, ``/metrics`` and ``/healthz``) or exits non-zero for its
service manager: it never stays up pretending, and it never gives up a line it did not prove bad.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from gateway.launch.broker import Mosquitto, free_port
from gateway.launch.influxd import Influxd
from tests.central.ingest.odd_influx import OddInflux
from tests.central.util import DB, Publisher, occupancy_payload, occupancy_times, wait_for

N = 6


def start_ingest(tmp_path: Path, mosquitto: Mosquitto, influx_url: str, metrics: int) -> Any:
    config = tmp_path / "central.toml"
    config.write_text(
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n'
        f'[influx]\nurl = "{influx_url}"\ndatabase = "{DB}"\nattempts = 1\ntimeout_s = 1\n'
        f'[ingest]\nmetrics_port = {metrics}\nbatch_interval_s = 0.2\nclient_id = "sup"\n'
        f'rejected_file = "{tmp_path / "rejected.jsonl"}"\n'
    )
    log = tmp_path / "ingest.log"
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "ingest", "-c", str(config)], stdout=fh, stderr=fh
        )
    wait_for(lambda: "subscribed to" in log.read_text(), 20, "the ingest subscribes")
    return proc, log


def healthz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith((name + " ", name + "{")):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {name}")


def publish(port: int, room: str) -> None:
    pub = Publisher(port)
    for seq in range(N):
        pub.publish(*occupancy_payload("s", room, seq))
    pub.close()


@pytest.mark.parametrize("mode", ["garbage", "truncated500", "https", "series"])
def test_an_influxdb_that_answers_wrongly_holds_everything_until_it_answers_right(
    mode: str, mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
):
    metrics = free_port()
    with OddInflux(upstream=influxd.url, mode=mode) as odd:
        proc, log = start_ingest(tmp_path, mosquitto, odd.url, metrics)
        try:
            publish(mosquitto.port, "held")
            odd.wait_requests(2, 20)  # the writer tried again: it is alive
            status, body = healthz(metrics)
            assert status == 200, body
            assert body["loops"]["writer"]["state"] in {"retrying", "writing"}
            assert "InfluxDB not taking writes" in body["loops"]["writer"]["detail"]
            assert metric(metrics, "learnroom_ingest_writer_up") == 0
            assert metric(metrics, "learnroom_ingest_messages_acked_total") == 0
            assert metric(metrics, "learnroom_ingest_points_refused_total") == 0
            odd.mode = "pass"  # the operator fixes the URL, the limit, the TLS setting
            wait_for(lambda: occupancy_times(influxd).get("held") == list(range(N)), 30, "stored")
            wait_for(lambda: metric(metrics, "learnroom_ingest_writer_up") == 1, 10, "writer up")
            assert metric(metrics, "learnroom_ingest_messages_acked_total") == N
            assert healthz(metrics)[0] == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
    assert log.read_text().count("InfluxDB is not taking writes") == 1, "said once"


def test_a_writer_stuck_in_an_answer_that_never_ends_makes_the_process_exit_non_zero(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
):
    metrics = free_port()
    with OddInflux(upstream=influxd.url, mode="drip") as odd:
        proc, log = start_ingest(tmp_path, mosquitto, odd.url, metrics)
        try:
            publish(mosquitto.port, "stuck")
            odd.wait_requests(1, 20)
            assert proc.wait(60) == 1, "exits for its service manager to start it again"
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "the writer loop is stuck" in log.read_text()
    # nothing was acknowledged: the next process gets every message again from the broker
    proc, _ = start_ingest(tmp_path, mosquitto, influxd.url, 0)
    try:
        wait_for(lambda: occupancy_times(influxd).get("stuck") == list(range(N)), 30, "stored")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
