"""What a Raspberry Pi pays for the agent: install size, packages, and the agent's RSS.

    python bench/pi_footprint.py [--refs OLD NEW] [--seconds 60]

For each git ref (default: the commit before the extras split, and the work tree), the
project is exported into a temporary folder and installed with the plain ``pip install .``
(what ``deploy/pi/install.sh`` does, less the ``[pi]`` hardware backends, which only build on
a Pi) into a fresh virtualenv; we count its packages and measure its size on disk. Then
``learnroom agent --simulate`` from that virtualenv runs against a real Mosquitto for
``--seconds`` and we read its peak and final RSS from /proc. Results go to stdout as a table
and to bench/results/pi_footprint.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.launch.broker import Mosquitto

#: The last commit before the install was split by role (issue: a Pi installs only the agent).
BEFORE = "63ea5b1"


def export(ref: str, dest: Path) -> Path:
    """The tree of ``ref`` ("WORKTREE" for the files as they are now) in ``dest``."""
    dest.mkdir(parents=True)
    if ref == "WORKTREE":
        files = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        for name in files:
            src = ROOT / name
            if src.is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / name)
        return dest
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def du_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def install(src: Path, venv: Path) -> dict[str, float | int]:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    empty = du_mb(venv)
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(src)],
        check=True,
        capture_output=True,
    )
    listed = json.loads(
        subprocess.run(
            [str(py), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    packages = [p["name"] for p in listed if p["name"] not in ("pip", "setuptools")]
    return {"packages": len(packages), "mb": round(du_mb(venv) - empty, 1)}


def agent_rss(venv: Path, broker: Mosquitto, state: Path, seconds: float) -> dict[str, float]:
    proc = subprocess.Popen(
        [
            str(venv / "bin" / "learnroom"),
            "agent",
            "--simulate",
            "--site",
            "bench",
            "--room",
            "pi",
            "--mqtt",
            broker.url,
            "--state-dir",
            str(state),
            "--log-level",
            "WARNING",
        ],
        cwd=state,
    )
    peak = 0.0
    rss = 0.0
    try:
        ps = psutil.Process(proc.pid)
        end = time.monotonic() + seconds
        while time.monotonic() < end and proc.poll() is None:
            rss = ps.memory_info().rss / 2**20
            peak = max(peak, rss)
            time.sleep(1)
    finally:
        proc.terminate()
        proc.wait(30)
    return {"rss_peak_mb": round(peak, 1), "rss_end_mb": round(rss, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--refs", nargs="+", default=[BEFORE, "WORKTREE"])
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="pi-footprint-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "broker")
        broker.start()
        try:
            for ref in args.refs:
                src = export(ref, work / f"src-{ref}")
                venv = work / f"venv-{ref}"
                figures = install(src, venv)
                state = work / f"state-{ref}"
                state.mkdir()
                figures |= agent_rss(venv, broker, state, args.seconds)
                results[ref] = figures
                print(ref, figures, flush=True)
        finally:
            broker.stop()
    print(f"\n{'ref':<10} {'packages':>8} {'MB':>7} {'RSS peak':>9} {'RSS end':>8}")
    for ref, f in results.items():
        print(
            f"{ref:<10} {f['packages']:>8} {f['mb']:>7} {f['rss_peak_mb']:>9} {f['rss_end_mb']:>8}"
        )
    out = ROOT / "bench" / "results" / "pi_footprint.json"
    out.write_text(json.dumps({"seconds": args.seconds, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
