"""Alert evaluation at city size (not a test): what one pass costs, and how long it can keep
message handling waiting.

    python bench/alerts_bench.py [--rooms 3000] [--sites 100] [--passes 20]

The real ``AlertService`` is fed each room's present (status, environment, Wi-Fi, a locker,
health) through ``on_message``, as its MQTT loop would. Then, on the service's clock:

- **all rooms**: ``evaluate(every_room=True)``, every room looked at (what every pass cost
  before passes looked only at rooms that can have changed; a pass after a maintenance window
  opens or closes still does);
- **pass**: the service's pass every ``PASS_S`` while each room reports every ``REPORT_S``
  (one room in six has news at each pass), with the rooms it looked at;
- **(cpu)**: the same passes in CPU time of the process (p50), which other load on the
  machine does not inflate;
- **slice / msg wait**: a pass over every room on the event loop as the service runs it,
  beside a task standing for message handling: the longest the pass held the loop, and the
  longest that task waited.

Configs: no overrides; one override per site; one per site plus one per room of a tenth of
the rooms. Goal (issue "City scale"): one evaluation of 3 000 rooms with overrides under
100 ms, and message handling never waiting longer than that. Results go to stdout and
bench/results/alerts.json.
"""

from __future__ import annotations

import argparse
import asyncio
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
#: the service's evaluate_interval_s and the gateways' report interval (defaults)
PASS_S = 5.0
REPORT_S = 30.0


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


def environment(site: str, room: str, now: datetime, seq: int, co2: float) -> tuple[str, bytes]:
    data = {"co2_ppm": co2, "temperature_c": 21.5, "humidity_pct": 45.0}
    return f"{PREFIX}/{site}/{room}/environment", envelope(
        site, room, "environment", now, seq, data
    )


def p50_max(took: list[float]) -> tuple[float, float]:
    took = sorted(took)
    return round(statistics.median(took), 1), round(took[-1], 1)


async def loop_lag(service: AlertService) -> tuple[float, float]:
    """A pass over every room on the event loop, as the service runs it, beside a task that
    stands for message handling: the longest the pass held the loop, and the longest that
    task waited for its turn (ms)."""
    for room in service.rooms.values():
        room.dirty = True
    lag = [0.0]
    done = asyncio.Event()

    async def messages() -> None:
        while not done.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(0)
            lag[0] = max(lag[0], time.perf_counter() - t0)

    task = asyncio.create_task(messages())
    await asyncio.sleep(0)
    await service.evaluate_yielding()
    done.set()
    await task
    return round(service.last_pass.longest_slice_s * 1000, 1), round(lag[0] * 1000, 1)


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
    full, steady, evaluated = [], [], []
    full_cpu, steady_cpu = [], []
    share = max(1, round(REPORT_S / PASS_S))
    for i in range(passes):
        clock[0] = start + timedelta(seconds=PASS_S * (i + 1))
        t0, c0 = time.perf_counter(), time.process_time()
        service.evaluate(every_room=True)
        full.append((time.perf_counter() - t0) * 1000)
        full_cpu.append((time.process_time() - c0) * 1000)
    for i in range(passes):
        clock[0] = start + timedelta(seconds=PASS_S * (passes + i + 1))
        # each room reports every REPORT_S: one in `share` rooms has news at each pass
        for j, (site, room) in enumerate(rooms[i % share :: share]):
            co2 = 700 + (j * 37 + i) % 1800
            service.on_message(*environment(site, room, clock[0], 100 + i, co2))
        t0, c0 = time.perf_counter(), time.process_time()
        service.evaluate()
        steady.append((time.perf_counter() - t0) * 1000)
        steady_cpu.append((time.process_time() - c0) * 1000)
        evaluated.append(service.last_pass.rooms)
    slice_ms, lag_ms = asyncio.run(loop_lag(service))
    full_p50, full_max = p50_max(full)
    steady_p50, steady_max = p50_max(steady)
    return {
        "rooms": len(rooms),
        "overrides": len(overrides),
        "messages_fed": fed,
        "full_ms_p50": full_p50,
        "full_ms_max": full_max,
        "eval_ms_p50": steady_p50,
        "eval_ms_max": steady_max,
        # CPU time of the process: what the pass costs, whatever else runs on the machine
        "full_cpu_ms_p50": p50_max(full_cpu)[0],
        "eval_cpu_ms_p50": p50_max(steady_cpu)[0],
        "rooms_per_pass": round(statistics.median(evaluated)),
        "longest_slice_ms": slice_ms,
        "message_wait_ms_max": lag_ms,
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
    print(
        f"{'config':<18} {'rooms':>5} {'overr.':>6} | {'all rooms p50/max (cpu) ms':>26} | "
        f"{'pass p50/max (cpu) ms':>21} {'rooms':>5} | {'slice ms':>8} {'msg wait ms':>11}"
    )
    for name, r in results.items():
        print(
            f"{name:<18} {r['rooms']:>5} {r['overrides']:>6} | "
            f"{r['full_ms_p50']:>8} / {r['full_ms_max']:>7} ({r['full_cpu_ms_p50']:>6}) | "
            f"{r['eval_ms_p50']:>6} / {r['eval_ms_max']:>6} ({r['eval_cpu_ms_p50']:>5}) "
            f"{r['rooms_per_pass']:>5} | "
            f"{r['longest_slice_ms']:>8} {r['message_wait_ms_max']:>11}"
        )
    out = ROOT / "bench" / "results" / "alerts.json"
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
