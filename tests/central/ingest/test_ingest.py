"""The ingest between a real Mosquitto and a real InfluxDB 1.x, run in process."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.launch.broker import Mosquitto, free_port
from gateway.launch.influxd import Influxd
from tests.central.util import (
    Publisher,
    central_config,
    expected_points,
    json_lines,
    metrics_text,
    occupancy_payload,
    occupancy_times,
    points_in_db,
    running_ingest,
    wait_for,
)
from tests.mqtt_util import Collector


def test_simulated_rooms_end_up_as_exactly_the_expected_points(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
):
    rooms = [("stadtbuecherei-mitte", "lernraum-1"), ("schule-nord", "raum-204")]
    with (
        running_ingest(central_config(mosquitto, influxd, tmp_path)) as ingest,
        Collector(mosquitto.port) as seen,
    ):
        agents = [
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "gateway", "agent", "--simulate"),
                    *("--site", site, "--room", room, "--mqtt", mosquitto.url),
                    *("--speed", "600", "--state-dir", str(tmp_path / room), "--seed", room),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for site, room in rooms
        ]
        time.sleep(10)
        for proc in agents:
            proc.send_signal(signal.SIGTERM)
        for proc in agents:
            assert proc.wait(20) == 0
        wait_for(lambda: ingest.stats.received >= len(seen.messages), 20, "ingest has all")
        assert ingest.wait_idle(20)
        carried = [(m.topic, m.payload) for m in seen.messages]

    expected = expected_points(carried)
    stored = points_in_db(influxd)
    measurements = {key[0] for key in stored}
    assert {"occupancy", "environment", "wifi", "gateway", "locker_slot"} <= measurements
    assert len(expected) > 500
    missing = expected.keys() - stored.keys()
    extra = stored.keys() - expected.keys()
    assert not missing, f"{len(missing)} points missing, e.g. {sorted(missing)[:3]}"
    assert not extra, f"{len(extra)} unexpected points, e.g. {sorted(extra)[:3]}"
    wrong = [k for k in expected if expected[k] != stored[k]]
    assert not wrong, f"fields differ: {wrong[0]}: {expected[wrong[0]]} != {stored[wrong[0]]}"
    assert sum(ingest.stats.rejected.values()) == 0
    assert ingest.stats.acked == ingest.stats.received


def test_bad_messages_are_counted_sampled_and_never_stall_the_valid_ones(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
):
    metrics_port = free_port()
    config = central_config(mosquitto, influxd, tmp_path, metrics_port=metrics_port)
    good = [occupancy_payload("s", "a", seq) for seq in range(40)]
    topic = "learnroom/v1/s/a/occupancy"
    valid = json.loads(good[0][1])
    bad = {
        "oversized": (topic, b"{" + b" " * 70_000 + b"}"),
        "bad_topic": ("learnroom/v1/S P/a/occupancy", good[0][1]),
        "not_json": (topic, b"\xff\xfe not json"),
        "unknown_version": (topic, json.dumps(valid | {"v": 99}).encode()),
        "invalid": (topic, json.dumps(valid | {"data": {"people": -3}}).encode()),
        "topic_mismatch": ("learnroom/v1/s/b/occupancy", good[1][1]),
    }
    pub = Publisher(mosquitto.port)
    with running_ingest(config) as ingest:
        for i, (t, payload) in enumerate(good):
            pub.publish(t, payload)
            if i % 6 == 0 and i // 6 < len(bad):
                pub.publish(*list(bad.values())[i // 6])
        wait_for(lambda: ingest.stats.received == len(good) + len(bad), 20, "all arrived")
        assert ingest.wait_idle(20)
        text = metrics_text(f"http://127.0.0.1:{metrics_port}/metrics")
    pub.close()

    assert occupancy_times(influxd) == {"a": list(range(40))}
    assert {r: n for r, n in ingest.stats.rejected.items() if n} == dict.fromkeys(bad, 1)
    for reason in bad:
        assert f'learnroom_ingest_messages_rejected_total{{reason="{reason}"}} 1.0' in text
    assert "learnroom_ingest_points_written_total 40.0" in text
    samples = json_lines(tmp_path / "rejected.jsonl")
    assert sorted(s["reason"] for s in samples) == sorted(bad)
    by_reason = {s["reason"]: s for s in samples}
    assert by_reason["topic_mismatch"]["topic"] == "learnroom/v1/s/b/occupancy"
    assert "s/b" in by_reason["topic_mismatch"]["detail"]
    assert "people" in by_reason["invalid"]["detail"]
    assert len(by_reason["oversized"]["payload"]) <= 1024


def test_seq_gaps_and_duplicates_are_counted_per_gateway(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
):
    metrics_port = free_port()
    config = central_config(mosquitto, influxd, tmp_path, metrics_port=metrics_port)
    pub = Publisher(mosquitto.port)
    with running_ingest(config) as ingest:
        for seq in (0, 1, 2, 6, 3, 3, 1):  # 4 and 5 missing; 3 and 1 twice
            pub.publish(*occupancy_payload("s", "a", seq))
        for seq in range(5):
            pub.publish(*occupancy_payload("s", "b", seq))
        wait_for(lambda: ingest.stats.received == 12, 20, "all arrived")
        assert ingest.wait_idle(20)
        text = metrics_text(f"http://127.0.0.1:{metrics_port}/metrics")
    pub.close()

    def value(name: str, room: str) -> float:
        match = re.search(rf'{name}{{room="{room}",site="s"}} ([0-9.e+]+)', text)
        assert match, f"{name} for {room} not in /metrics"
        return float(match.group(1))

    assert value("learnroom_ingest_seq_missing", "a") == 2
    assert value("learnroom_ingest_seq_duplicates_total", "a") == 2
    assert value("learnroom_ingest_seq_missing", "b") == 0
    assert value("learnroom_ingest_seq_duplicates_total", "b") == 0
    # the duplicates changed nothing in the database
    assert occupancy_times(influxd)["a"] == [0, 1, 2, 3, 6]


def test_database_down_holds_acknowledgements_and_resumes_by_itself(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
):
    config = central_config(mosquitto, influxd, tmp_path)
    pub = Publisher(mosquitto.port)
    with running_ingest(config) as ingest:
        for seq in range(20):
            pub.publish(*occupancy_payload("s", "a", seq))
        assert ingest.wait_idle(20)
        assert ingest.stats.acked == 20
        influxd.stop()
        for seq in range(20, 220):
            pub.publish(*occupancy_payload("s", "a", seq))
        wait_for(lambda: not ingest.stats.writer_up, 20, "the ingest notices")
        wait_for(lambda: ingest.stats.received == 220, 20, "all arrived")
        time.sleep(1)
        assert ingest.stats.acked == 20, "acknowledged what was not written"
        assert ingest.pending() == 200
        influxd.start()
        assert ingest.wait_idle(30)
        assert ingest.stats.writer_up
        assert ingest.stats.acked == 220
    pub.close()
    assert occupancy_times(influxd) == {"a": list(range(220))}


def test_the_influxdb_2_path_through_influxdb_client(mosquitto: Mosquitto, tmp_path: Path):
    """The same ingest with an ``[influx]`` of org, bucket and token: influxdb-client's
    ``/api/v2/write``, here answered by VictoriaMetrics (no InfluxDB 2.x is packaged)."""
    import shutil

    from gateway.central.config import parse_central
    from gateway.launch.victoria import VictoriaMetrics

    if shutil.which("victoria-metrics") is None:
        pytest.fail("victoria-metrics is required; run scripts/test")
    vm = VictoriaMetrics(tmp_path / "victoria")
    vm.start()
    try:
        config = parse_central(
            {
                "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
                "accept": {"max_age_s": 0, "max_ahead_s": 0},
                "influx": {"url": vm.url, "org": "learnroom", "bucket": "learnroom"},
                "ingest": {"metrics_port": 0, "rejected_file": "", "batch_interval_s": 0.2},
            },
            "test",
            environ={"LEARNROOM_INFLUX_TOKEN": "t0ken"},
        )
        pub = Publisher(mosquitto.port)
        now = int(time.time())
        with running_ingest(config) as ingest:
            for seq in range(30):
                topic, payload = occupancy_payload("s", "v2", seq)
                env = json.loads(payload)
                env["ts"] = datetime.fromtimestamp(now - 300 + seq, UTC).isoformat()
                pub.publish(topic, json.dumps(env).encode())
            wait_for(lambda: ingest.stats.acked == 30, 20, "written and acknowledged")
        pub.close()
        series = vm.export('{__name__="occupancy_people",room="v2"}', min_samples=30)
        (people,) = series
        assert people["metric"]["site"] == "s"
        assert sorted(people["timestamps"]) == [(now - 300 + s) * 1000 for s in range(30)]
        assert sorted(people["values"]) == sorted(float(s % 30) for s in range(30))
    finally:
        vm.stop()
