"""Display latency (not a test): MQTT publish to the change visible in the page's DOM.

    python bench/display_bench.py [--changes 300]

A real Mosquitto, the real ``learnroom display`` process and Debian's Chromium (Playwright).
Each change is a new people count for one room, published retained at QoS 1; the page's
script stamps the card when the Server-Sent Event has replaced it (``Date.now()``, the same
machine clock as the publisher's). p50 and p99 over ``--changes``; goal p99 <= 500 ms.
Results go to stdout and bench/results/display.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.launch.broker import Mosquitto, free_port
from gateway.models import OccupancyData, StatusData, make_envelope

SITE, ROOM = "bench", "raum-1"


def payload(data: OccupancyData | StatusData) -> bytes:
    return make_envelope(SITE, ROOM, data, datetime.now(UTC), 1).model_dump_json().encode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--changes", type=int, default=300)
    ap.add_argument("--gap", type=float, default=0.1, help="seconds between changes")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="display-bench-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "mosquitto")
        broker.start()
        client = mqtt.Client(CallbackAPIVersion.VERSION2)
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        topic = f"learnroom/v1/{SITE}/{ROOM}"
        client.publish(
            f"{topic}/status", payload(StatusData(online=True)), 1, True
        ).wait_for_publish()
        first = OccupancyData(people=3, occupied=True)
        client.publish(f"{topic}/occupancy", payload(first), 1, True).wait_for_publish()
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "display", "--mqtt", broker.url, "--port", str(port)],
            cwd=ROOT,
            stderr=subprocess.DEVNULL,
        )
        latencies: list[float] = []
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"{url}/healthz", timeout=1).close()  # noqa: S310
                    break
                except OSError:
                    time.sleep(0.1)
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path="/usr/bin/chromium", args=["--no-sandbox"]
                )
                page = browser.new_page()
                page.goto(f"{url}/?lang=en")
                card = f"#room-{SITE}--{ROOM}"
                page.wait_for_selector(card)
                time.sleep(1)
                for i in range(args.changes):
                    people = 4 + i % 20
                    data = OccupancyData(people=people, occupied=True)
                    sent = time.time() * 1000
                    client.publish(f"{topic}/occupancy", payload(data), 1, True)
                    page.wait_for_function(
                        f"() => document.querySelector('{card}').innerText"
                        f".includes('{people} people')",
                        timeout=10000,
                    )
                    shown = float(page.eval_on_selector(card, "li => li.dataset.received"))
                    latencies.append((shown - sent) / 1000)
                    time.sleep(args.gap)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(10)
            client.loop_stop()
            broker.stop()
    ordered = sorted(latencies)
    results = {
        "changes": len(ordered),
        "p50_s": ordered[len(ordered) // 2],
        "p99_s": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "max_s": ordered[-1],
        "date": datetime.now(UTC).date().isoformat(),
    }
    for key, value in results.items():
        print(f"{key:10} {value:.4f}" if isinstance(value, float) else f"{key:10} {value}")
    out = ROOT / "bench" / "results" / "display.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
