"""Restarts and clocks (issue 13): the real agent process, a persistent subscriber counting seq.

- SIGKILL at random moments: nothing is lost, and what the broker acknowledged is not sent
  again beyond what was acknowledged after the last commit (the seq mark lists PUBACKs within
  ``commit_interval_s``; before, all acknowledged since the last bulk delete, up to
  ``delete_interval_s``).
- A crash loop (SIGKILL right after each start): no seq is given to two readings, none is
  lost, and the room reports once the loop ends.
- The wall clock jumping backwards and forwards under a running agent (libfaketime, as an
  NTP step on a Pi without a real-time clock does): no crash, and seq keeps rising by one.
Figures are printed for the README (``-s``).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from tests.agent.faultkit import reached, top_seq
from tests.agent.test_agent_process import PREFIX, ROOM, SITE, agent_argv, spawn, stop
from tests.agent.test_faults import by_seq, resent
from tests.mqtt_util import Collector, Received
from tests.paths import ROOT

FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def complete(above: int) -> Callable[[list[Received]], bool]:
    """Reporting above ``above`` with every seq from 0 up there received (the backlog too)."""

    def pred(messages: list[Received]) -> bool:
        got = by_seq(messages)
        return bool(got) and max(got) > above and len(got) == max(got) + 1

    return pred


def no_seq_twice(messages: list[Received]) -> dict[int, set[bytes]]:
    seen = by_seq(messages)
    twice = {s for s, p in seen.items() if len(p) > 1}
    assert not twice, f"{len(twice)} seqs were given to two different readings"
    return seen


def test_sigkill_at_random_moments_resends_little(mosquitto, state_dir):
    rng = random.Random(os.environ.get("FAULT_SEED", "13"))
    cmd = agent_argv(mosquitto, state_dir)
    kills = 6
    with Collector(mosquitto.port, f"{PREFIX}/#", persistent=True) as sub:
        for _ in range(kills):
            before = top_seq(sub.snapshot())
            n = rng.randint(20, 200)
            proc = spawn(cmd)
            try:
                sub.wait_for(reached(before + n), 60, "readings")
            finally:
                stop(proc, signal.SIGKILL)
        top = top_seq(sub.snapshot())
        proc = spawn(cmd)
        try:
            got = sub.wait_for(complete(top + 60), 90, "every seq, the backlog replayed")
        finally:
            err = stop(proc)
    assert proc.returncode == 0, err
    seen = no_seq_twice(got)
    missing = max(seen) + 1 - len(seen)
    print(
        f"\nfault sigkill-random: {kills} kills, highest seq {max(seen)}, missing {missing}, "
        f"sent again {resent(got)} ({resent(got) / kills:.1f} per kill)"
    )


def births(messages: list[Received]) -> int:
    return sum(m.topic == f"{PREFIX}/status" and m.json["data"]["online"] for m in messages)


def test_a_crash_loop_reuses_no_seq_and_the_room_reports(mosquitto, state_dir):
    cmd = agent_argv(mosquitto, state_dir)
    loops = 6
    with Collector(mosquitto.port, f"{PREFIX}/#", persistent=True) as sub:
        for i in range(loops):
            born = births(sub.snapshot()) + 1
            proc = spawn(cmd)
            try:
                if i % 3 == 2:
                    continue  # killed before it could even connect
                sub.wait_for(lambda ms, b=born: births(ms) >= b, 60, "the birth")  # type: ignore[misc]
            finally:
                stop(proc, signal.SIGKILL)
        top = top_seq(sub.snapshot())
        proc = spawn(cmd)
        try:
            got = sub.wait_for(complete(top + 40), 90, "every seq, the room reporting")
        finally:
            err = stop(proc)
    assert proc.returncode == 0, err
    seen = no_seq_twice(got)
    missing = max(seen) + 1 - len(seen)
    print(
        f"\nfault crash-loop: {loops} kills at start, highest seq {max(seen)}, missing "
        f"{missing}, sent again {resent(got)}"
    )


def room_toml(tmp_path: Path, port: int, state_dir: Path) -> Path:
    """A room with no hardware but health, on the real clock (the simulation keeps its own)."""
    path = tmp_path / "room.toml"
    path.write_text(
        f'[room]\nsite = "{SITE}"\nroom = "{ROOM}"\n\n'
        "[agent]\nhealth_interval_s = 0.1\nadvertise = false\n\n"
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\n\n'
        f'[outbox]\npath = "{state_dir / "outbox.sqlite"}"\n'
    )
    return path


def stamps(messages: list[Received]) -> list[tuple[int, datetime]]:
    """(seq, ts) of each health reading in arrival order."""
    return [
        (m.json["seq"], datetime.fromisoformat(m.json["ts"]))
        for m in messages
        if m.topic == f"{PREFIX}/health" and m.payload
    ]


@pytest.mark.skipif(not FAKETIME.exists(), reason="needs libfaketime: apt-get install faketime")
def test_clock_jumps_back_and_forth_change_no_seq(mosquitto, state_dir, tmp_path):
    if not FAKETIME.exists():
        pytest.fail("libfaketime is required; run scripts/test")
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LD_PRELOAD": str(FAKETIME),
        "FAKETIME_TIMESTAMP_FILE": str(offset),
        "FAKETIME_NO_CACHE": "1",
        # the kernel's monotonic clock never jumps; only the wall clock is stepped
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    config = room_toml(tmp_path, mosquitto.port, state_dir)
    cmd = [sys.executable, "-m", "gateway", "agent", "-c", str(config)]

    jumps = {"-3d": -3, "+400d": 400, "-10m": 0}
    with Collector(mosquitto.port, f"{PREFIX}/#", persistent=True) as sub:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE)
        try:
            sub.wait_for(lambda ms: len(stamps(ms)) >= 10, 60, "health readings")
            for jump, days in jumps.items():
                first = stamps(sub.snapshot())[0][1]
                offset.write_text(jump + "\n")
                sub.wait_for(
                    lambda ms, d=days, f=first: abs((stamps(ms)[-1][1] - f).days - d) <= 1,  # type: ignore[misc]
                    60,
                    f"readings stamped after the jump {jump}",
                )
                top = top_seq(sub.snapshot())
                sub.wait_for(reached(top + 20), 60, "readings after it")
        finally:
            err = stop(proc)
        got = sub.snapshot()
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    no_seq_twice(got)
    seqs = [s for s, _ in stamps(got)]
    assert seqs == sorted(seqs), "seq rises whatever the clock says"
    all_seqs = sorted(by_seq(got))
    print(
        f"\nfault clock-jumps {list(jumps)}: highest seq {all_seqs[-1]}, missing "
        f"{all_seqs[-1] + 1 - len(all_seqs)}, sent again {resent(got)}"
    )
