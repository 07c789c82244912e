"""Alert evaluation at city size (not a test): one pass over every room, with and without
per-site and per-room overrides.

    python bench/alerts_bench.py [--rooms 3000] [--sites 100] [--passes 20]

The real ``AlertService`` is fed each room's present (status, environment, Wi-Fi, a locker,
health) through ``on_message``, as its MQTT loop would, then ``evaluate()`` runs ``--passes``
times on the same clock as in production (one pass per ``alerts.evaluate_interval_s``).
Configs: no overrides; one override per site; one per site plus one per room of a tenth of
the rooms. Goal (issue "City scale"): one evaluation of 3 000 rooms with overrides under
100 ms, since it runs on the event loop that also handles messages. Results go to stdout and
bench/results/alerts.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.central.alerts.service import AlertService
from gateway.central.config import parse_central

PREFIX = "learnroom/v1"


def envelope(
    site: str, room: str, kind: str, ts: datetime, seq: int, data: dict[str, Any]
) -> bytes:
    stamp = ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"
    return json.dumps(
        {"v": 1, "site": site, "room": room, "kind": kind, "ts": stamp, "seq": seq, "data": data}
    ).encode()


def feed(service: AlertService, rooms: list[tuple[str, str]], now: datetime) -> int:
    sent = 0
    for i, (site, room) in enumerate(rooms):
        p = f"{PREFIX}/{site}/{room}"
        co2 = 700 + (i * 37) % 1800  # some rooms above the ventilation threshold
        messages: list[tuple[str, dict[str, Any]]] = [
            ("status", {"online": True, "version": "0.1.0", "started": "2026-12-01T06:00:00Z"}),
            ("environment", {"co2_ppm": co2, "temperature_c": 21.5, "humidity_pct": 45.0}),
            (
                "wifi",
                {
                    "ssid": "library",
                    "rssi_dbm": -60 - i % 25,
                    "loss_pct": 0.0,
                    "dns_ms": 20.0,
                    "portal_ok": True,
                    "ok": True,
                },
            ),
            (
                "lockers/l1",
                {
                    "door_open": i % 50 == 0,
                    "slots": [
                        {"slot": str(s), "present": True, "charging": s != 1} for s in range(8)
                    ],
                },
            ),
            (
                "health",
                {
                    "uptime_s": 3600,
                    "cpu_pct": 5.0,
                    "mem_rss_mb": 45.0,
                    "disk_free_mb": 9000.0,
                    "outbox_depth": 0,
                    "outbox_dropped": 0,
                },
            ),
        ]
        for seq, (sub, data) in enumerate(messages):
            kind = sub.split("/")[0]
            service.on_message(f"{p}/{sub}", envelope(site, room, kind, now, seq, data))
            sent += 1
    return sent


def run(
    rooms: list[tuple[str, str]], overrides: list[dict[str, Any]], passes: int
) -> dict[str, Any]:
    config = parse_central(
        {"alerts": {"alertmanager_url": None, "override": overrides}}, "bench", environ={}
    )
    start = datetime.now(UTC)
    clock = [start]
    service = AlertService(config, clock=lambda: clock[0])
    service._started = True
    fed = feed(service, rooms, start)
    took = []
    for i in range(passes):
        clock[0] = start + timedelta(seconds=5 * (i + 1))
        t0 = time.perf_counter()
        service.evaluate()
        took.append((time.perf_counter() - t0) * 1000)
    took.sort()
    return {
        "rooms": len(rooms),
        "overrides": len(overrides),
        "messages_fed": fed,
        "eval_ms_p50": round(statistics.median(took), 1),
        "eval_ms_max": round(took[-1], 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rooms", type=int, default=3000)
    ap.add_argument("--sites", type=int, default=100)
    ap.add_argument("--passes", type=int, default=20)
    args = ap.parse_args()
    rooms = [(f"site-{i % args.sites}", f"room-{i}") for i in range(args.rooms)]
    per_site = [
        {"site": f"site-{s}", "rules": {"co2_ventilate": {"threshold": 1200, "clear": 1100}}}
        for s in range(args.sites)
    ]
    per_room = [
        {"site": site, "room": room, "rules": {"humidity": {"low": 20.0, "clear_low": 22.0}}}
        for site, room in rooms[::10]
    ]
    results = {
        "none": run(rooms, [], args.passes),
        "per_site": run(rooms, per_site, args.passes),
        "per_site_and_room": run(rooms, per_site + per_room, args.passes),
    }
    print(f"{'config':<18} {'rooms':>6} {'overrides':>9} {'p50 ms':>7} {'max ms':>7}")
    for name, r in results.items():
        print(
            f"{name:<18} {r['rooms']:>6} {r['overrides']:>9} "
            f"{r['eval_ms_p50']:>7} {r['eval_ms_max']:>7}"
        )
    out = ROOT / "bench" / "results" / "alerts.json"
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
