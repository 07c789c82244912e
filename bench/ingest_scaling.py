"""Ingest throughput with ``--workers 1`` and ``--workers N``, in turn (not a test).

    python bench/ingest_scaling.py [--rounds 3] [--workers 2] [--messages 40000]

bench/ingest_bench.py's (a): a backlog waiting in a real Mosquitto for the ingest's sessions,
drained by the real command into a real InfluxDB 1.x (a fresh database each time), points per
second from the first point written to the last. The two settings take turns ``--rounds``
times and the best round of each counts: on a shared machine the load of others only ever
slows a round down, so the best rounds are the likest conditions. Results also go to
bench/results/ingest_scaling.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_bench import (
    ROOT,
    _lines,
    drain,
    message,
    publish,
    session,
    stop,
    write_config,
)

from gateway.central.ingest.workers import client_id
from gateway.launch.broker import Mosquitto, free_port
from gateway.launch.influxd import Influxd


def scaling(args: argparse.Namespace) -> None:
    """(a) for ``--workers 1`` and ``--workers N`` in turn, ``args.rounds`` rounds each, a fresh
    database and backlog every time; the best round of each counts (on a shared machine the
    load of others only ever slows a round), so the two are compared under like conditions."""
    per_gateway = max(1, args.messages // args.gateways)
    n_messages = per_gateway * args.gateways
    n_points = sum(len(_lines(*message(0, n))) for n in range(per_gateway)) * args.gateways
    rates: dict[int, list[float]] = {1: [], args.workers: []}
    with tempfile.TemporaryDirectory(prefix="ingest-scaling-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "mosquitto")
        influx = Influxd(work / "influxdb")
        broker.start()
        influx.start()
        try:
            for r in range(args.rounds):
                for n, rounds in rates.items():
                    db = f"scale{n}r{r}"
                    influx.query(f"CREATE DATABASE {db}")
                    port, conf = free_port(), work / f"{db}.toml"
                    write_config(conf, broker, influx, db, port)
                    for w in range(n):
                        session(
                            broker,
                            client_id(f"bench-{db}-0", w),
                            f"$share/bench-{db}/learnroom/v1/#",
                        )
                    publish(broker.port, args.gateways, per_gateway)
                    cmd = [sys.executable, "-m", "gateway", "ingest", "--workers", str(n)]
                    secs, _, procs = drain(
                        [[*cmd, "-c", str(conf)]],
                        [port],
                        "learnroom_ingest_points_written_total",
                        n_points,
                    )
                    stop(procs)
                    for w in range(n):
                        session(broker, client_id(f"bench-{db}-0", w), None)
                    rounds.append(n_points / secs)
                    print(f"round {r} --workers {n}: {n_points / secs:8.0f} points/s", flush=True)
        finally:
            influx.stop()
            broker.stop()
    best = {n: max(r) for n, r in rates.items()}
    results = {
        "messages": n_messages,
        "points": n_points,
        "rounds": {str(n): [round(x) for x in r] for n, r in rates.items()},
        "best_points_per_s": {str(n): round(b) for n, b in best.items()},
        "workers_vs_one": best[args.workers] / best[1],
        "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
        "date": datetime.now(UTC).date().isoformat(),
    }
    print(json.dumps(results, indent=2))
    out = ROOT / "bench" / "results" / "ingest_scaling.json"
    out.write_text(json.dumps(results, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gateways", type=int, default=500)
    ap.add_argument("--messages", type=int, default=40_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    scaling(ap.parse_args())


if __name__ == "__main__":
    main()
