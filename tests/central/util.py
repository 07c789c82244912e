"""What the database holds against what the broker carried, point by point."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.central.config import CentralConfig, parse_central
from gateway.central.ingest.service import Ingest
from gateway.central.mapping import to_points
from gateway.central.validate import Accepted, check
from gateway.central.writers import writer_from_config
from gateway.launch.broker import Mosquitto
from gateway.launch.influxd import Influxd
from gateway.models import OccupancyData, make_envelope

DB = "learnroom"
#: (measurement, sorted tags, time in ms)
Key = tuple[str, tuple[tuple[str, str], ...], int]
T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def central_config(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path, **ingest: Any
) -> CentralConfig:
    return parse_central(
        {
            "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
            # readings at fixed dates (T0) and simulated days: no window around today's clock
            "accept": {"max_age_s": 0, "max_ahead_s": 0},
            "influx": {"url": influxd.url, "database": DB, "attempts": 2},
            "ingest": {
                "metrics_port": 0,
                "rejected_file": str(tmp_path / "rejected.jsonl"),
                "client_id": f"ingest-{tmp_path.name}"[:60],
                "batch_interval_s": 0.2,
            }
            | ingest,
        },
        "test",
        environ={},
    )


@contextmanager
def running_ingest(config: CentralConfig) -> Iterator[Ingest]:
    ingest = Ingest(config, writer_from_config(config.influx), retry_s=0.2, retry_max_s=1.0)  # type: ignore[arg-type]
    ingest.start()
    try:
        wait_for(lambda: ingest.stats.connected, 10, "ingest connects")
        time.sleep(0.2)  # SUBACK
        yield ingest
    finally:
        ingest.stop()


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting until {what}")
        time.sleep(0.05)


def expected_points(payloads: Iterable[tuple[str, bytes]]) -> dict[Key, dict[str, Any]]:
    """The points the schema makes of every valid message (the last copy wins, as in Influx)."""
    out: dict[Key, dict[str, Any]] = {}
    for topic, payload in payloads:
        result = check(topic, payload)
        if not isinstance(result, Accepted):
            continue
        for point in to_points(result.envelope, result.topic.sub):
            key = (point.measurement, point.tags, point.time_ms)
            out.setdefault(key, {}).update(point.fields)
    return out


def points_in_db(influxd: Influxd) -> dict[Key, dict[str, Any]]:
    out: dict[Key, dict[str, Any]] = {}
    res = influxd.query("SELECT * FROM /.*/ GROUP BY *", DB)
    for series in res["results"][0].get("series", []):
        tags = tuple(sorted((k, v) for k, v in series.get("tags", {}).items() if v))
        cols = series["columns"]
        for row in series["values"]:
            values = dict(zip(cols, row, strict=True))
            ts = values.pop("time")
            fields = {k: v for k, v in values.items() if v is not None}
            out[(series["name"], tags, int(ts))] = fields
    return out


def occupancy_payload(site: str, room: str, seq: int) -> tuple[str, bytes]:
    """A valid reading whose time follows from its ``seq``: one point per seq in the DB."""
    data = OccupancyData(people=seq % 30, occupied=seq % 30 > 0, capacity=30)
    env = make_envelope(site, room, data, T0 + timedelta(seconds=seq), seq)
    return f"learnroom/v1/{site}/{room}/occupancy", env.model_dump_json().encode()


def occupancy_times(influxd: Influxd) -> dict[str, list[int]]:
    """Each room's occupancy timestamps, as seconds after T0 (= the seq that made them)."""
    res = influxd.query("SELECT people FROM occupancy GROUP BY room", DB)
    out: dict[str, list[int]] = {}
    t0 = int(T0.timestamp() * 1000)
    for series in res["results"][0].get("series", []):
        out[series["tags"]["room"]] = [(row[0] - t0) // 1000 for row in series["values"]]
    return out


class Publisher:
    """A paho publisher for scripted gateways and hostile senders."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.client.publish(topic, payload, qos=qos).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def metrics_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310
        return str(resp.read().decode())


def json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]
