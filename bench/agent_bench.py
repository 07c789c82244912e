"""Agent figures in one run (not a test): RSS, CPU per reading, outbox disk writes per reading.

    python bench/agent_bench.py [--seconds 60] [--speed 60]

1. ``learnroom agent --simulate`` runs against a real Mosquitto for ``--seconds``; a subscriber
   counts what arrives. From /proc we read the agent's peak RSS, its CPU time and the bytes it
   caused to be written to storage, between a warm-up mark and the end (imports excluded).
2. A bare paho loop publishes the same number of messages of the same sizes at QoS 1 to the
   same broker (windows of in-flight messages, as a careful hand-written publisher would).
3. A commit-per-message outbox (insert+commit, then delete+commit after the PUBACK) writes
   the same payloads, as a naive at-least-once publisher would.
Results go to stdout as a table and to bench/results/agent.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.launch.broker import Mosquitto


def write_bytes(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/<pid>/io")


class Counter:
    def __init__(self, port: int) -> None:
        self.sizes: list[int] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-counter")
        self.client.on_connect = lambda c, *a: c.subscribe("learnroom/v1/#", qos=1)
        self.client.on_message = self._on
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on(self, c, u, msg) -> None:
        with self.lock:
            self.sizes.append(len(msg.payload))

    def count(self) -> int:
        with self.lock:
            return len(self.sizes)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def run_agent(broker: Mosquitto, work: Path, seconds: float, speed: float, warmup: float) -> dict:
    counter = Counter(broker.port)
    time.sleep(0.3)
    state = work / "agent-state"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "agent",
            "--simulate",
            "--site",
            "bench",
            "--room",
            "room-1",
            "--mqtt",
            broker.url,
            "--speed",
            str(speed),
            "--state-dir",
            str(state),
            "--log-level",
            "WARNING",
        ],
        cwd=ROOT,
    )
    ps = psutil.Process(proc.pid)
    time.sleep(warmup)
    cpu0 = sum(ps.cpu_times()[:2])
    io0 = write_bytes(proc.pid)
    n0 = counter.count()
    peak_rss = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        peak_rss = max(peak_rss, ps.memory_info().rss)
        time.sleep(0.5)
    # children (gpiozero threads are threads, not processes) are included in the process times
    cpu1 = sum(ps.cpu_times()[:2])
    io1 = write_bytes(proc.pid)
    n1 = counter.count()
    proc.terminate()
    proc.wait(20)
    sizes = counter.sizes[n0:n1]
    counter.stop()
    readings = n1 - n0
    return {
        "readings": readings,
        "readings_per_s": readings / seconds,
        "cpu_s": cpu1 - cpu0,
        "cpu_us_per_reading": (cpu1 - cpu0) / readings * 1e6,
        "peak_rss_mb": peak_rss / 1e6,
        "disk_bytes": io1 - io0,
        "disk_bytes_per_reading": (io1 - io0) / readings,
        "mean_payload_bytes": sum(sizes) / len(sizes),
        "sizes": sizes,
    }


BARE_LOOP = r"""
import json, resource, sys, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
port, sizes, rate = int(sys.argv[1]), json.loads(sys.stdin.read()), float(sys.argv[2])
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare")
c.connect("127.0.0.1", port)
c.loop_start()
time.sleep(0.3)
r0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.monotonic()
window = []
for i, size in enumerate(sizes):
    # the same rate as the agent: a publisher that idles between readings pays for it too
    delay = t0 + i / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    window.append(c.publish("learnroom/v1/bench/bare/occupancy", b"x" * size, qos=1))
    if len(window) >= 32:
        for info in window:
            info.wait_for_publish()
        window.clear()
for info in window:
    info.wait_for_publish()
r1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
print(json.dumps({"cpu_s": cpu, "messages": len(sizes)}))
c.loop_stop()
"""


PIPELINE = r"""
import asyncio, json, random, resource, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from gateway.agent.outbox import Outbox
from gateway.agent.runner import Agent
from gateway.agent.build import simulated_room_config
from gateway.clock import RealClock
from gateway.config import parse_mqtt_url
from gateway.models import EnvironmentData, OccupancyData

url, rate, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[4])

class Replay:
    # the agent's own path only: typed readings at the simulated room's rate, no hardware
    name = "replay"
    def __init__(self):
        self.done = asyncio.Event()
        self.cpu = 0.0
    async def run(self, sink):
        rng = random.Random(1)
        await asyncio.sleep(2)
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        for i in range(n):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if i % 2:
                sink.emit(OccupancyData(people=rng.randint(0, 24), occupied=True, seats_total=8,
                                        seats_free=rng.randint(0, 8), capacity=24))
            else:
                sink.emit(EnvironmentData(co2_ppm=rng.uniform(400, 1500), temperature_c=21.0,
                                          humidity_pct=45.0))
        await asyncio.sleep(1.5)  # the last commit and PUBACKs
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        self.done.set()

async def main():
    config = simulated_room_config("bench", "pipeline")
    d = Path(tempfile.mkdtemp())
    config = config.model_copy(update={
        "mqtt": parse_mqtt_url(url),
        "outbox": config.outbox.model_copy(update={"path": d / "o.sqlite"}),
    })
    src = Replay()
    with Outbox(config.outbox.path, config.outbox.max_messages) as box:
        agent = Agent(config, box, [src], RealClock())
        task = asyncio.create_task(agent.run())
        await src.done.wait()
        agent.stop()
        await task
    print(json.dumps({"cpu_s": src.cpu, "messages": n}))

asyncio.run(main())
"""


def run_pipeline(broker: Mosquitto, n: int, rate: float) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PIPELINE, broker.url, str(rate), str(ROOT), str(n)],
        capture_output=True,
        text=True,
        check=True,
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["cpu_us_per_reading"] = res["cpu_s"] / res["messages"] * 1e6
    return res


def run_bare(broker: Mosquitto, sizes: list[int], rate: float) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", BARE_LOOP, str(broker.port), str(rate)],
        input=json.dumps(sizes),
        capture_output=True,
        text=True,
        check=True,
    )
    res = json.loads(out.stdout)
    res["cpu_us_per_reading"] = res["cpu_s"] / res["messages"] * 1e6
    return res


def run_commit_per_message(work: Path, sizes: list[int], page_size: int = 4096) -> dict:
    path = work / f"baseline-{page_size}.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"PRAGMA page_size={page_size}")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE outbox (seq INTEGER PRIMARY KEY, topic TEXT, payload BLOB, live INT)")
    io0 = write_bytes()
    for seq, size in enumerate(sizes):
        db.execute("INSERT INTO outbox VALUES (?,?,?,1)", (seq, "learnroom/v1/b/r/x", b"x" * size))
        db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))  # after its PUBACK
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    os.sync()
    io1 = write_bytes()
    return {"disk_bytes": io1 - io0, "disk_bytes_per_reading": (io1 - io0) / len(sizes)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--speed", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="learnroom-bench-", dir=ROOT / "bench"))
    broker = Mosquitto(work / "mosquitto")
    with broker.running():
        agent = run_agent(broker, work, args.seconds, args.speed, args.warmup)
        bare = run_bare(broker, agent["sizes"], agent["readings_per_s"])
        pipeline = run_pipeline(broker, agent["readings"], agent["readings_per_s"])
    base = run_commit_per_message(work, agent["sizes"])
    base_1k = run_commit_per_message(work, agent["sizes"], page_size=1024)
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
        "seconds": args.seconds,
        "speed": args.speed,
        "agent": {k: v for k, v in agent.items() if k != "sizes"},
        "bare_paho": bare,
        "agent_pipeline_only": pipeline,
        "commit_per_message": base,
        "commit_per_message_1k_pages": base_1k,
        "ratios": {
            "cpu_per_reading_vs_bare": agent["cpu_us_per_reading"] / bare["cpu_us_per_reading"],
            "pipeline_cpu_per_reading_vs_bare": pipeline["cpu_us_per_reading"]
            / bare["cpu_us_per_reading"],
            "disk_per_reading_vs_commit_per_message": agent["disk_bytes_per_reading"]
            / base["disk_bytes_per_reading"],
            "disk_per_reading_vs_commit_per_message_1k_pages": agent["disk_bytes_per_reading"]
            / base_1k["disk_bytes_per_reading"],
        },
    }
    out = ROOT / "bench" / "results" / "agent.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    a, r = result["agent"], result["ratios"]
    print(
        f"readings: {a['readings']} in {args.seconds:.0f} s ({a['readings_per_s']:.1f}/s), "
        f"mean payload {a['mean_payload_bytes']:.0f} B"
    )
    print(f"agent peak RSS: {a['peak_rss_mb']:.1f} MB (goal <= 48)")
    print(
        f"CPU per reading: agent {a['cpu_us_per_reading']:.0f} us, bare paho "
        f"{bare['cpu_us_per_reading']:.0f} us -> {r['cpu_per_reading_vs_bare']:.2f}x (goal <= 1.5)"
    )
    print(
        f"  the agent's own path (replayed readings, no simulation): "
        f"{pipeline['cpu_us_per_reading']:.0f} us -> {r['pipeline_cpu_per_reading_vs_bare']:.2f}x"
    )
    print(
        f"disk per reading: agent {a['disk_bytes_per_reading']:.0f} B, commit-per-message "
        f"{base['disk_bytes_per_reading']:.0f} B -> "
        f"{r['disk_per_reading_vs_commit_per_message']:.3f}x (goal <= 0.1)"
    )
    print(
        f"  (same 1 KiB pages as the outbox: commit-per-message "
        f"{base_1k['disk_bytes_per_reading']:.0f} B -> "
        f"{r['disk_per_reading_vs_commit_per_message_1k_pages']:.3f}x)"
    )
    import shutil

    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
