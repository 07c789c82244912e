"""An hour of the agent (not a test): does its memory or its file descriptors grow?

    python bench/soak.py [--minutes 60] [--speed 60]

``learnroom agent --simulate`` runs against a real Mosquitto with a subscriber taking every
message, for ``--minutes``. Every minute we read the agent's RSS and open file descriptors
from /proc. The slope of each (least squares) is reported for the whole run and for its
second half: a leak keeps its slope when the caches have filled, a warm-up does not.
Results go to stdout and bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import json
import os
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


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope, units per hour (x in seconds)."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    return sxy / sxx * 3600 if sxx else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--speed", type=float, default=60.0)
    ap.add_argument("--every", type=float, default=60.0, help="seconds between samples")
    args = ap.parse_args()
    received = [0]
    lock = threading.Lock()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "broker")
        broker.start()
        sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="soak-subscriber")

        def on_message(*_: object) -> None:
            with lock:
                received[0] += 1

        sub.on_message = on_message
        sub.on_connect = lambda c, *_: c.subscribe("learnroom/v1/#", qos=1)
        sub.connect(broker.host, broker.port)
        sub.loop_start()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                "agent",
                "--simulate",
                "--site",
                "soak",
                "--room",
                "r1",
                "--mqtt",
                broker.url,
                "--speed",
                str(args.speed),
                "--state-dir",
                str(work / "state"),
                "--log-level",
                "WARNING",
            ],
            cwd=ROOT,
            env=os.environ | {"PYTHONPATH": str(ROOT)},
        )
        ps = psutil.Process(proc.pid)
        samples: list[dict[str, float]] = []
        start = time.monotonic()
        try:
            while time.monotonic() - start < args.minutes * 60 and proc.poll() is None:
                time.sleep(args.every)
                with lock:
                    got = received[0]
                sample = {
                    "t_s": round(time.monotonic() - start, 1),
                    "rss_mb": round(ps.memory_info().rss / 2**20, 2),
                    "fds": ps.num_fds(),
                    "received": got,
                }
                samples.append(sample)
                print(json.dumps(sample), flush=True)
        finally:
            proc.terminate()
            proc.wait(30)
            sub.loop_stop()
            broker.stop()
    half = samples[len(samples) // 2 :]
    result = {
        "minutes": args.minutes,
        "speed": args.speed,
        "messages": samples[-1]["received"] if samples else 0,
        "rss_mb_first": samples[0]["rss_mb"] if samples else None,
        "rss_mb_last": samples[-1]["rss_mb"] if samples else None,
        "rss_slope_mb_per_h": round(slope([(s["t_s"], s["rss_mb"]) for s in samples]), 3),
        "rss_slope_second_half_mb_per_h": round(slope([(s["t_s"], s["rss_mb"]) for s in half]), 3),
        "fds_first": samples[0]["fds"] if samples else None,
        "fds_last": samples[-1]["fds"] if samples else None,
        "fds_slope_per_h": round(slope([(s["t_s"], s["fds"]) for s in samples]), 3),
        "samples": samples,
    }
    summary = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(summary, indent=2))
    (ROOT / "bench" / "results" / "soak.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
