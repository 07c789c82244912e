"""The real ``learnroom agent --simulate`` process against a real Mosquitto.

What a user of the broker sees: every kind on its topic, the Last Will after a crash, and no
message lost when the agent is killed with SIGKILL in the middle of publishing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.launch.broker import Mosquitto
from gateway.models import parse_envelope
from tests.mqtt_util import Collector
from tests.paths import ROOT

SITE, ROOM = "proc-site", "room-1"
PREFIX = f"learnroom/v1/{SITE}/{ROOM}"
# 09:00 in Berlin on a weekday: the room opens into a busy morning
START = "2026-11-24T08:00:00+00:00"


def agent_argv(mosquitto: Mosquitto, state_dir: Path, *extra: str) -> list[str]:
    """The simulated room at 600x, as the fault suite runs it."""
    return [
        sys.executable,
        "-m",
        "gateway",
        "agent",
        "--simulate",
        "--site",
        SITE,
        "--room",
        ROOM,
        "--mqtt",
        mosquitto.url,
        "--speed",
        "600",
        "--start",
        START,
        "--seed",
        "7",
        "--state-dir",
        str(state_dir),
        "--log-level",
        "WARNING",
        *extra,
    ]


@pytest.fixture
def agent_cmd(mosquitto: Mosquitto, state_dir: Path) -> list[str]:
    return agent_argv(mosquitto, state_dir)


def spawn(cmd: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> str:
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err.decode(errors="replace")


def seqs(messages) -> list[int]:
    out = []
    for m in messages:
        if m.topic.startswith(PREFIX) and m.payload:
            seq = parse_envelope(m.payload).seq
            if seq is not None:
                out.append(seq)
    return out


def test_simulated_room_publishes_every_kind_with_valid_envelopes(mosquitto, agent_cmd):
    with Collector(mosquitto.port) as sub:
        proc = spawn(agent_cmd)
        try:
            wanted = {"status", "occupancy", "environment", "wifi", "lockers/a", "health", "events"}

            def kinds(ms):
                return {m.topic.removeprefix(PREFIX + "/") for m in ms}

            got = sub.wait_for(lambda ms: wanted <= kinds(ms), 90, "every kind of reading")
        finally:
            err = stop(proc)
    assert proc.returncode == 0, err
    for m in got:
        env = parse_envelope(m.payload)
        kind = m.topic.removeprefix(PREFIX + "/").split("/")[0]
        assert (env.site, env.room, env.kind) == (SITE, ROOM, kind)
        assert m.retain is (kind != "events"), m.topic
    occupancy = [parse_envelope(m.payload) for m in got if m.topic.endswith("/occupancy")]
    assert any(o.data.people for o in occupancy), "people came in during the morning"  # type: ignore[union-attr]
    assert all(o.data.capacity == 24 for o in occupancy)  # type: ignore[union-attr]


def test_last_will_when_the_agent_is_killed(mosquitto, agent_cmd):
    with Collector(mosquitto.port, f"{PREFIX}/status") as sub:
        proc = spawn(agent_cmd)
        sub.wait_for(lambda ms: any(m.json["data"]["online"] for m in ms), 30, "the birth")
        stop(proc, signal.SIGKILL)
        got = sub.wait_for(lambda ms: not ms[-1].json["data"]["online"], 60, "the Last Will")
    will = got[-1]
    assert will.retain
    assert "seq" not in will.json, "the Last Will carries no seq"
    assert will.json["data"]["version"]


def test_sigkill_while_publishing_loses_nothing_and_seq_goes_on(mosquitto, agent_cmd):
    with Collector(mosquitto.port, f"{PREFIX}/#", persistent=True) as sub:
        first = spawn(agent_cmd)
        sub.wait_for(lambda ms: len(seqs(ms)) >= 60, 60, "a first run of readings")
        stop(first, signal.SIGKILL)
        before = seqs(sub.snapshot())
        second = spawn(agent_cmd)

        def complete(ms) -> bool:
            got = set(seqs(ms))
            return max(got) > max(before) + 60 and got == set(range(max(got) + 1))

        try:
            # the backlog is replayed paced, after a random delay: give it time
            sub.wait_for(complete, 60, "every seq, with the backlog replayed")
        finally:
            err = stop(second)
        assert second.returncode == 0, err


def test_no_badge_id_in_clear_in_any_payload(mosquitto, agent_cmd):
    from gateway.sim.world import RoomWorld

    # the simulated patrons' badges: the same seed gives the same cards
    badges = RoomWorld(f"7-{SITE}-{ROOM}", capacity=24, seats=8, slots=[]).badges
    with Collector(mosquitto.port) as sub:
        proc = spawn(agent_cmd)
        try:
            got = sub.wait_for(
                lambda ms: sum(b'"checkout"' in m.payload for m in ms) >= 2, 90, "two checkouts"
            )
        finally:
            stop(proc)
    checkouts = [m.json["data"] for m in got if b'"checkout"' in m.payload]
    assert any(c.get("borrower") for c in checkouts), "loans carry a pseudonym"
    wire = b"\n".join(m.payload for m in got).upper()
    for badge in badges:
        assert badge.encode() not in wire
