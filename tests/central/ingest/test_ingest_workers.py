"""``learnroom ingest --workers 2`` as a real process tree against a real Mosquitto and InfluxDB.

The broker deals each gateway's messages to both workers; every seq must still be stored once
and counted once (the parent keeps the one seq tracker), ``/metrics`` must add both workers up,
SIGTERM must stop both cleanly, and a worker killed from outside must take the whole command
down with exit 1 (systemd restarts it), losing nothing: the broker sends again what was not
acknowledged.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from gateway.central.ingest.metrics import merge
from gateway.central.ingest.workers import client_id
from gateway.launch.broker import Mosquitto, free_port
from gateway.launch.influxd import Influxd
from tests.central.util import (
    DB,
    Publisher,
    metrics_text,
    occupancy_payload,
    occupancy_times,
    wait_for,
)

ROOMS = ("w1", "w2", "w3", "w4", "w5")


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    before = log.read_text().count("subscribed to") if log.exists() else 0
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "ingest", "--workers", "2", "-c", str(config)],
            stdout=fh,
            stderr=fh,
        )
    wait_for(lambda: log.read_text().count("subscribed to") >= before + 2, 30, "both subscribe")
    return proc


def publish(port: int, seqs: range) -> None:
    pub = Publisher(port)
    for seq in seqs:
        for room in ROOMS:
            pub.publish(*occupancy_payload("s", room, seq))
    pub.close()


def metric(port: int, name: str) -> float:
    total = 0.0
    for line in metrics_text(f"http://127.0.0.1:{port}/metrics").splitlines():
        if line.startswith((name + " ", name + "{")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def workers_of(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """The worker processes (multiprocessing also starts its resource tracker)."""
    children = psutil.Process(proc.pid).children()
    return [c for c in children if "resource_tracker" not in " ".join(c.cmdline())]


def healthz(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
        return json.loads(resp.read())


def stored_once(influxd: Influxd, n: int) -> bool:
    try:
        return occupancy_times(influxd) == {room: list(range(n)) for room in ROOMS}
    except OSError:
        return False


def test_two_workers_store_and_count_every_seq_once_and_stop_together(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
):
    port = free_port()
    config = tmp_path / "central.toml"
    config.write_text(
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n'
        f'[influx]\nurl = "{influxd.url}"\ndatabase = "{DB}"\n'
        f"[accept]\nmax_age_s = 0\nmax_ahead_s = 0\n"
        f'[ingest]\nmetrics_port = {port}\nbatch_interval_s = 0.2\nclient_id = "wk"\n'
        f'rejected_file = "{tmp_path / "rejected.jsonl"}"\n'
    )
    log = tmp_path / "ingest.log"
    proc = start(config, log)
    try:
        publish(mosquitto.port, range(40))
        wait_for(lambda: stored_once(influxd, 40), 30, "every seq stored")
        total = 40 * len(ROOMS)
        wait_for(
            lambda: metric(port, "learnroom_ingest_messages_acked_total") == total, 10, "acked"
        )
        assert metric(port, "learnroom_ingest_workers_answering") == 2
        assert metric(port, "learnroom_ingest_messages_received_total") == total
        assert metric(port, "learnroom_ingest_points_written_total") == total
        # one tracker for both workers: no gateway misses the seqs the other worker got
        assert metric(port, "learnroom_ingest_seq_gateways") == len(ROOMS)
        assert metric(port, "learnroom_ingest_seq_missing") == 0
        assert metric(port, "learnroom_ingest_seq_lost_total") == 0
        assert metric(port, "learnroom_ingest_seq_duplicates_total") == 0
        body = healthz(port)
        assert body["status"] == "ok", body
        assert {"mqtt", "writer", "worker-0", "worker-1"} <= set(body["loops"])
        workers = workers_of(proc)
        assert len(workers) == 2

        # a worker killed from outside: noticed, the other stopped, exit 1 for systemd
        victim = workers[1]
        victim.kill()
        assert proc.wait(60) == 1
        assert "ended with signal SIGKILL" in log.read_text()
        psutil.wait_procs(workers, timeout=10)
        assert not any(w.is_running() for w in workers), "no worker outlives the command"
    finally:
        if proc.poll() is None:
            proc.kill()

    # restarted as systemd would: the same sessions resume, nothing is lost or doubled
    publish(mosquitto.port, range(40, 60))
    proc = start(config, log)
    try:
        publish(mosquitto.port, range(60, 80))
        wait_for(lambda: stored_once(influxd, 80), 30, "every seq stored after the restart")
        workers = workers_of(proc)
        assert len(workers) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    psutil.wait_procs(workers, timeout=10)
    assert not any(w.is_running() for w in workers)
    assert log.read_text().count("(session resumed)") >= 2


def test_worker_ids_are_stable_and_the_first_keeps_the_single_process_session():
    assert [client_id("ingest", i) for i in range(3)] == ["ingest", "ingest-1", "ingest-2"]


def test_merged_metrics_add_counters_and_take_the_minimum_of_up_gauges():
    def worker(received: int, up: int) -> list:
        return [
            CounterMetricFamily("learnroom_ingest_messages_received", "", received),
            GaugeMetricFamily("learnroom_ingest_writer_up", "", up),
            GaugeMetricFamily("learnroom_ingest_held_seconds", "", 3.0 * (1 - up)),
        ]

    merged = {m.name: m.samples[0].value for m in merge([worker(5, 1), worker(7, 0)])}
    assert merged == {
        "learnroom_ingest_messages_received": 12,
        "learnroom_ingest_writer_up": 0,
        "learnroom_ingest_held_seconds": 3.0,
    }
