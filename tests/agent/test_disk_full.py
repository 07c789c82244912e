"""A full disk is a fault, not an exit (issue 13): the real agent on a small tmpfs.

While the outbox cannot be written the agent keeps sending live readings straight from memory
and says ``disk_full`` in ``health.faults``; a restart on the full disk does the same (before,
every start exited again); when space returns it writes the outbox again by itself.
Figures (missing, sent twice, seconds of silence) are printed for the README (``-s``).
"""

from __future__ import annotations

import time

from tests.agent.faultkit import TimedCollector, fill, live_faults, tmpfs, top_seq, wait_exit
from tests.agent.test_agent_process import PREFIX, agent_argv, spawn
from tests.agent.test_faults import by_seq, resent


def test_a_full_disk_keeps_live_readings_flowing_and_heals(mosquitto, state_dir):
    cmd = agent_argv(mosquitto, state_dir, "--log-level", "INFO")
    with (
        tmpfs(state_dir, "3m"),
        TimedCollector(mosquitto.port, f"{PREFIX}/#", persistent=True) as sub,
    ):
        proc = spawn(cmd)
        try:
            sub.wait_for(lambda ms: top_seq(ms) >= 60, 60, "a first run of readings")
            filler = fill(state_dir)
            full_at = time.monotonic()
            before = top_seq(sub.snapshot())
            got = sub.wait_for(
                lambda ms: any("disk_full" in f for f in live_faults(ms, before)),
                90,
                "disk_full in health",
            )
            noticed = top_seq(got)
            sub.wait_for(lambda ms: top_seq(ms) >= noticed + 100, 60, "live readings, disk full")
            # a restart on the full disk (a crash, a reboot) starts and reports too
            proc.kill()
            wait_exit(proc, 30)
            killed = top_seq(sub.snapshot())
            proc = spawn(cmd)
            sub.wait_for(
                lambda ms: any("disk_full" in f for f in live_faults(ms, killed)),
                60,
                "disk_full in health after a restart on the full disk",
            )
            sub.wait_for(lambda ms: top_seq(ms) >= killed + 100, 60, "readings after it")
            filler.unlink()
            freed_at = time.monotonic()
            freed = top_seq(sub.snapshot())

            def healed(ms):
                late = live_faults(ms, freed + 20)
                return bool(late) and "disk_full" not in late[-1]

            got = sub.wait_for(healed, 60, "disk_full gone from health")
            well = top_seq(got)
            got = sub.wait_for(lambda ms: top_seq(ms) >= well + 100, 60, "readings after")
            end = time.monotonic()
        finally:
            proc.terminate()
            err = wait_exit(proc, 30)
            print(err[:6000])
    assert proc.returncode == 0, err
    seen = by_seq(got)
    assert not [s for s, p in seen.items() if len(p) > 1], "no seq given to two readings"
    faults = [f for fs in live_faults(got, -1) for f in fs if f.startswith("disk_")]
    missing = max(seen) + 1 - len(seen)
    print(
        f"\nfault disk-full: highest seq {max(seen)}, missing {missing}, sent twice "
        f"{resent(got)}, longest silence while full (a restart included) "
        f"{sub.longest_silence(full_at, freed_at):.2f} s, after "
        f"{sub.longest_silence(freed_at, end):.2f} s, faults seen {sorted(set(faults))}"
    )
