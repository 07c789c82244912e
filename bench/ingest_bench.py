"""Ingest figures in one run (not a test), against a real Mosquitto and a real InfluxDB 1.x.

    python bench/ingest_bench.py [--gateways 500] [--messages 100000] [--latency-seconds 30]

Load: ``--gateways`` scripted gateways, each sending the real mix of kinds (occupancy,
environment, Wi-Fi, health, a 4-slot locker), built with the shared models; publisher
processes send at QoS 1 with bounded windows of in-flight messages.

(a) Throughput. The same backlog of ``--messages`` waits in the broker for a persistent
    session; ``learnroom ingest --workers 1`` (the real CLI process) drains it into InfluxDB,
    then ``learnroom ingest --workers N`` (one command, N processes in one share group). The ceiling
    is a direct writer sending the same line protocol in 5000-line gzip batches to the same
    InfluxDB (a fresh database each). Points per second, ingest / direct.
(b) Receive rate. The ingest with its writer replaced by a counter drains the same backlog,
    against ``mosquitto_sub`` (MQTT 5, same Receive Maximum) draining it to /dev/null, and
    against a bare paho callback that only acknowledges (the ceiling of any paho receiver).
(c) Latency at half of (a)'s rate, live: each reading's time is its publish time; a poller
    asks InfluxDB every 50 ms for new points, so the figure includes up to 50 ms of polling.
(d) Peak RSS of the ingest process over (a) and (c).
Results go to stdout and bench/results/ingest.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.central.ingest.workers import client_id
from gateway.central.mapping import to_lines
from gateway.central.validate import Accepted, check
from gateway.central.writers import InfluxV1Writer
from gateway.launch.broker import Mosquitto, free_port
from gateway.launch.influxd import Influxd
from gateway.models import (
    EnvironmentData,
    HealthData,
    LockerData,
    OccupancyData,
    SlotState,
    WifiData,
    make_envelope,
)

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
KINDS = ("occupancy", "environment", "wifi", "health", "lockers")


def message(gateway: int, n: int, ts: datetime | None = None) -> tuple[str, bytes]:
    """The n-th message of a gateway: kinds in turn, each reading a second apart."""
    site, room = f"site-{gateway % 20}", f"room-{gateway}"
    kind = KINDS[n % len(KINDS)]
    when = ts or T0 + timedelta(seconds=n)
    sub = ""
    data: Any
    if kind == "occupancy":
        data = OccupancyData(people=n % 25, occupied=n % 25 > 0, seats_total=20, seats_free=5)
    elif kind == "environment":
        data = EnvironmentData(co2_ppm=400 + n % 900, temperature_c=21.5, humidity_pct=40.0)
    elif kind == "wifi":
        data = WifiData(
            ssid="Bibliothek Gast", bssid="dc:a6:32:0b:5e:10", rssi_dbm=-60.0, bitrate_mbps=144.4,
            latency_ms=8.0, loss_pct=0.0, dns_ms=12.0, portal_ok=True, ok=True,
        )  # fmt: skip
    elif kind == "health":
        data = HealthData(
            uptime_s=float(n), cpu_pct=12.0, mem_rss_mb=50.0, cpu_temp_c=48.0,
            disk_free_mb=9000.0, outbox_depth=0, outbox_dropped=0,
        )  # fmt: skip
    else:
        sub = "/tablets"
        slots = [SlotState(slot=str(i), present=(n + i) % 3 > 0, charging=True) for i in range(4)]
        data = LockerData(door_open=False, slots=slots)
    env = make_envelope(site, room, data, when, n)
    return f"learnroom/v1/{site}/{room}/{kind}{sub}", env.model_dump_json().encode()


def _publish_worker(port: int, gateways: list[int], per_gateway: int, rate: float) -> None:
    """One publisher process: its gateways' messages, QoS 1, at most 500 in flight."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.max_inflight_messages_set(500)
    client.max_queued_messages_set(0)
    done = threading.Semaphore(500)
    client.on_publish = lambda *_: done.release()
    client.connect("127.0.0.1", port)
    client.loop_start()
    started = time.monotonic()
    sent = 0
    for n in range(per_gateway):
        for g in gateways:
            live = rate > 0
            topic, payload = message(g, n, datetime.now(UTC) if live else None)
            done.acquire()
            client.publish(topic, payload, qos=1)
            sent += 1
            if live:
                ahead = started + sent / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
    for _ in range(500):
        done.acquire()
    client.disconnect()
    client.loop_stop()


def publish(port: int, gateways: int, per_gateway: int, rate: float = 0, procs: int = 2) -> float:
    """Publish with ``procs`` processes; ``rate`` > 0 paces them (messages/s in total)."""
    started = time.monotonic()
    workers = [
        mp.Process(
            target=_publish_worker,
            args=(port, list(range(i, gateways, procs)), per_gateway, rate / procs),
        )
        for i in range(procs)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.monotonic() - started


def metric(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return 0.0
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


class RssWatch(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.1)


BARE_PAHO = """
import sys, threading, time
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
port, n = int(sys.argv[1]), int(sys.argv[2])
got, first, done = [0], [0.0], threading.Event()
def on_message(c, u, m):
    if not got[0]:
        first[0] = time.monotonic()
    got[0] += 1
    c.ack(m.mid, 1)
    if got[0] >= n:
        done.set()
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=mqtt.MQTTv5,
                manual_ack=True)
c.on_message = on_message
p = Properties(PacketTypes.CONNECT)
p.SessionExpiryInterval = 3600
p.ReceiveMaximum = 20000
c.connect("127.0.0.1", port, clean_start=False, properties=p)
c.loop_start()
done.wait(600)
print(n / (time.monotonic() - first[0]))
"""

COUNTER_INGEST = """
import sys, signal, threading
from pathlib import Path
from gateway.central.config import load_central_config
from gateway.central.ingest.service import Ingest
from gateway.central.writers import WriteResult
class Counting:
    def write(self, lines):
        return WriteResult(written=len(lines))
    def close(self):
        pass
ingest = Ingest(load_central_config(Path(sys.argv[1])), Counting())
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
ingest.start()
stop.wait()
ingest.stop()
"""


def write_config(path: Path, broker: Mosquitto, influx: Influxd, db: str, metrics: int) -> None:
    path.write_text(
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
        f'[influx]\nurl = "{influx.url}"\ndatabase = "{db}"\n'
        f'[ingest]\nclient_id = "bench-{db}-0"\nshared_group = "bench-{db}"\n'
        f"metrics_port = {metrics}\n"
    )


def drain(
    cmds: list[list[str]], ports: list[int], name: str, target: float, rss: bool = False
) -> tuple[float, int, list[subprocess.Popen[bytes]]]:
    """Start ingest processes on a waiting backlog; seconds from the first message until
    their metric ``name`` adds up to ``target``, and the peak RSS of the first."""
    procs = [subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.DEVNULL) for cmd in cmds]
    watch = RssWatch(procs[0].pid)
    if rss:
        watch.start()
    first = None
    while True:
        value = sum(metric(port, name) for port in ports)
        now = time.monotonic()
        if first is None and value > 0:
            first = now
        if value >= target:
            break
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        # not faster: with --workers each look makes the parent read every worker's /metrics
        time.sleep(0.1)
    watch.halt.set()
    return now - (first or now), watch.peak, procs


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(30)


def session(broker: Mosquitto, client_id: str, topic: str | None) -> None:
    """With ``topic``: a persistent MQTT 5 session subscribed to it, then away, so that a
    backlog waits for it. Without: the session is dropped, so the broker stops queueing."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600 if topic else 0
    c.connect("127.0.0.1", broker.port, clean_start=topic is None, properties=props)
    c.loop_start()
    time.sleep(0.3)
    if topic:
        c.subscribe(topic, qos=1)
        time.sleep(0.5)
    c.disconnect()
    c.loop_stop()


#: one field per measurement to count its points
COUNTED = {
    "occupancy": "people",
    "environment": "co2_ppm",
    "wifi": "rssi_dbm",
    "gateway": "uptime_s",
    "locker_slot": "present",
    "locker_door": "open",
}


def count_points(influx: Influxd, db: str) -> int:
    total = 0
    for measurement, field in COUNTED.items():
        res = influx.query(f"SELECT count({field}) FROM {measurement}", db)  # noqa: S608
        series = res["results"][0].get("series")
        total += int(series[0]["values"][0][1]) if series else 0
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gateways", type=int, default=500)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--latency-seconds", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=2, help="--workers of the second (a) run")
    args = ap.parse_args()
    per_gateway = max(1, args.messages // args.gateways)
    n_messages = per_gateway * args.gateways
    results: dict[str, Any] = {"gateways": args.gateways, "messages": n_messages}
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "mosquitto")
        influx = Influxd(work / "influxdb")
        broker.start()
        influx.start()
        try:
            lines = [
                line
                for g in range(args.gateways)
                for n in range(per_gateway)
                for line in _lines(*message(g, n))
            ]
            results["points"] = n_points = len(lines)
            print(f"load: {n_messages} messages, {n_points} points, {args.gateways} gateways")

            # (a) ceiling: direct writer, 5000-line gzip batches
            influx.query("CREATE DATABASE direct")
            writer = InfluxV1Writer(influx.url, "direct")
            t = time.monotonic()
            for i in range(0, len(lines), 5000):
                writer.write(lines[i : i + 5000])
            direct_s = time.monotonic() - t
            results["direct_points_per_s"] = n_points / direct_s
            del lines

            # (a) ingest: the real CLI drains a waiting backlog
            influx.query("CREATE DATABASE ingest")
            metrics = free_port()
            conf = work / "central.toml"
            write_config(conf, broker, influx, "ingest", metrics)
            session(broker, "bench-ingest-0", "$share/bench-ingest/learnroom/v1/#")
            publish_s = publish(broker.port, args.gateways, per_gateway)
            results["publish_messages_per_s"] = n_messages / publish_s
            secs, peak_a, (proc,) = drain(
                [[py, "-m", "gateway", "ingest", "--workers", "1", "-c", str(conf)]],
                [metrics],
                "learnroom_ingest_points_written_total",
                n_points,
                rss=True,
            )
            results["ingest_points_per_s"] = n_points / secs
            stored = count_points(influx, "ingest")
            results["ingest_points_stored"] = stored

            # (c) latency at half load, live, same ingest process
            rate = results["ingest_points_per_s"] / 2 / (n_points / n_messages)
            results["latency_rate_messages_per_s"] = rate
            lat = LatencyPoller(influx, "ingest")
            lat.start()
            watch = RssWatch(proc.pid)
            watch.start()
            live_per_gateway = max(1, int(rate * args.latency_seconds / args.gateways))
            publish(broker.port, args.gateways, live_per_gateway, rate=rate)
            time.sleep(3)
            lat.halt.set()
            lat.join()
            watch.halt.set()
            stop([proc])
            session(broker, "bench-ingest-0", None)
            results["latency_samples"] = len(lat.latencies)
            if lat.latencies:
                ordered = sorted(lat.latencies)
                results["latency_p50_s"] = ordered[len(ordered) // 2]
                results["latency_p99_s"] = ordered[int(len(ordered) * 0.99)]
            results["ingest_peak_rss_mb"] = max(peak_a, watch.peak) / 1e6

            # (b) receive rate: counting writer vs mosquitto_sub, same backlog
            conf_b = work / "central-b.toml"
            metrics_b = free_port()
            write_config(conf_b, broker, influx, "counter", metrics_b)
            session(broker, "bench-counter-0", "$share/bench-counter/learnroom/v1/#")
            publish(broker.port, args.gateways, per_gateway)
            secs_b, _, procs_b = drain(
                [[py, "-c", COUNTER_INGEST, str(conf_b)]],
                [metrics_b],
                "learnroom_ingest_messages_received_total",
                n_messages,
            )
            stop(procs_b)
            session(broker, "bench-counter-0", None)

            # (a) again: one command, --workers processes in one share group (DESIGN.md "Scale")
            influx.query("CREATE DATABASE workers")
            port_w = free_port()
            conf_w = work / "central-w.toml"
            write_config(conf_w, broker, influx, "workers", port_w)
            for w in range(args.workers):
                cid = client_id("bench-workers-0", w)
                session(broker, cid, "$share/bench-workers/learnroom/v1/#")
            publish(broker.port, args.gateways, per_gateway)
            cmd = [py, "-m", "gateway", "ingest", "--workers", str(args.workers), "-c", str(conf_w)]
            secs_w, _, procs_w = drain(
                [cmd], [port_w], "learnroom_ingest_points_written_total", n_points
            )
            stop(procs_w)
            results["workers"] = args.workers
            results["workers_points_per_s"] = n_points / secs_w
            results["workers_points_stored"] = count_points(influx, "workers")
            results["ingest_receive_messages_per_s"] = n_messages / secs_b

            # the ceiling of any paho receive path: a bare callback that only acknowledges
            session(broker, "bench-bare", "learnroom/v1/#")
            publish(broker.port, args.gateways, per_gateway)
            bare = subprocess.run(
                [py, "-c", BARE_PAHO, str(broker.port), str(n_messages)],
                capture_output=True,
                text=True,
                check=True,
            )
            results["bare_paho_messages_per_s"] = float(bare.stdout.strip())
            session(broker, "bench-bare", None)

            sub_cmd = [
                "mosquitto_sub", "-p", str(broker.port), "-V", "mqttv5", "-q", "1",
                "-c", "-i", "bench-sub", "-t", "learnroom/v1/#",
                "-x", "3600", "-D", "connect", "receive-maximum", "20000",
            ]  # fmt: skip
            first = subprocess.Popen(
                [*sub_cmd, "-W", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            first.wait()
            publish(broker.port, args.gateways, per_gateway)
            t = time.monotonic()
            subprocess.run([*sub_cmd, "-C", str(n_messages)], stdout=subprocess.DEVNULL, check=True)
            results["mosquitto_sub_messages_per_s"] = n_messages / (time.monotonic() - t)
        finally:
            influx.stop()
            broker.stop()

    results["a_ratio"] = results["ingest_points_per_s"] / results["direct_points_per_s"]
    results["a_ratio_workers"] = results["workers_points_per_s"] / results["direct_points_per_s"]
    results["b_ratio"] = (
        results["ingest_receive_messages_per_s"] / results["mosquitto_sub_messages_per_s"]
    )
    results["b_ratio_ingest_vs_bare_paho"] = (
        results["ingest_receive_messages_per_s"] / results["bare_paho_messages_per_s"]
    )
    results["a_workers_vs_one"] = results["workers_points_per_s"] / results["ingest_points_per_s"]
    results["b_ratio_bare_paho"] = (
        results["bare_paho_messages_per_s"] / results["mosquitto_sub_messages_per_s"]
    )
    results["machine"] = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
    results["date"] = datetime.now(UTC).date().isoformat()
    for key, value in results.items():
        print(f"{key:32} {value:.3f}" if isinstance(value, float) else f"{key:32} {value}")
    out = ROOT / "bench" / "results" / "ingest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


def _lines(topic: str, payload: bytes) -> list[str]:
    result = check(topic, payload)
    assert isinstance(result, Accepted)  # noqa: S101
    return to_lines(result.envelope, result.topic.sub)


class LatencyPoller(threading.Thread):
    """Every 50 ms: which occupancy points became queryable since the last look."""

    def __init__(self, influx: Influxd, db: str) -> None:
        super().__init__(daemon=True)
        self.influx = influx
        self.db = db
        self.latencies: list[float] = []
        self.halt = threading.Event()

    def run(self) -> None:
        since = int(time.time() * 1000)
        seen: set[tuple[str, int]] = set()
        while not self.halt.is_set():
            res = self.influx.query(
                f"SELECT people FROM occupancy WHERE time >= {since - 5000}ms GROUP BY room",  # noqa: S608
                self.db,
            )
            now = time.time()
            for series in res["results"][0].get("series", []):
                room = series["tags"]["room"]
                for ts, _ in series["values"]:
                    if (room, ts) not in seen:
                        seen.add((room, ts))
                        self.latencies.append(now - ts / 1000)
            if seen:
                since = max(ts for _, ts in seen)
            time.sleep(0.05)


if __name__ == "__main__":
    main()
