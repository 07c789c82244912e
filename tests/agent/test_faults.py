"""The agent on a bad day (issue 13): the real agent process, a real Mosquitto, and a
persistent-session subscriber counting ``seq`` the way the central side does.

Each case damages the agent's state between a SIGKILL and the next start, and holds it to:
the room keeps reporting, and no ``seq`` is ever given to two different readings. The figures
(missing and re-sent numbers per case) are printed for the README (run with ``-s``).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.agent.state import STEP, SeqMark, Witness, pack_witness, witness_offset
from gateway.launch.broker import Mosquitto
from gateway.models import parse_envelope
from tests.agent.test_agent_process import PREFIX, ROOM, SITE, agent_argv, spawn, stop
from tests.mqtt_util import Collector, Received

OUTBOX = f"outbox-{SITE}-{ROOM}.sqlite"
LOANS = f"loans-{SITE}-{ROOM}.json"


@pytest.fixture
def agent_cmd(mosquitto: Mosquitto, state_dir: Path) -> list[str]:
    return agent_argv(mosquitto, state_dir)


def by_seq(messages: list[Received]) -> dict[int, set[bytes]]:
    """Every payload seen per seq; two different payloads under one seq is the bug."""
    out: dict[int, set[bytes]] = {}
    for m in messages:
        if m.topic.startswith(PREFIX) and m.payload:
            seq = parse_envelope(m.payload).seq
            if seq is not None:
                out.setdefault(seq, set()).add(m.payload)
    return out


def resent(messages: list[Received]) -> int:
    """Copies of a seq beyond the first (harmless: the pipeline is idempotent)."""
    with_seq = [m for m in messages if m.topic.startswith(PREFIX) and b'"seq"' in m.payload]
    return len(with_seq) - len(by_seq(messages))


def health_faults(messages: list[Received]) -> list[list[str]]:
    return [m.json["data"]["faults"] for m in messages if m.topic == f"{PREFIX}/health"]


def files(state: Path) -> list[Path]:
    box = state / OUTBOX
    return [box, box.with_name(OUTBOX + "-wal"), box.with_name(OUTBOX + "-shm")]


def checkpoint(state: Path) -> Path:
    """Fold the WAL into the main file, as SQLite does every 1000 pages."""
    db = sqlite3.connect(state / OUTBOX)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return state / OUTBOX


def deleted(state: Path) -> None:
    for f in files(state):
        f.unlink(missing_ok=True)


def emptied(state: Path) -> None:
    deleted(state)
    (state / OUTBOX).write_bytes(b"")


def truncated(state: Path) -> None:
    box = checkpoint(state)
    with box.open("r+b") as f:
        f.truncate(box.stat().st_size // 2)


def header_overwritten(state: Path) -> None:
    box = checkpoint(state)
    with box.open("r+b") as f:
        f.write(b"\xa5" * 100)


def middle_page_overwritten(state: Path) -> None:
    box = checkpoint(state)
    pages = box.stat().st_size // 1024
    with box.open("r+b") as f:
        f.seek(pages // 2 * 1024)
        f.write(os.urandom(1024))


def wal_damaged(state: Path) -> None:
    wal = state / (OUTBOX + "-wal")
    size = wal.stat().st_size
    assert size > 4096, "the killed agent left commits in its WAL"
    with wal.open("r+b") as f:
        f.seek(size // 3)
        f.write(os.urandom(2048))


DAMAGE: dict[str, Callable[[Path], None]] = {
    "deleted": deleted,
    "emptied": emptied,
    "truncated": truncated,
    "header": header_overwritten,
    "middle-page": middle_page_overwritten,
    "wal": wal_damaged,
}


def settled(messages: list[Received], above: int) -> bool:
    """Reporting above ``above``, and the outbox drained (the backlog replayed)."""
    late = [m.json["data"] for m in messages if m.topic == f"{PREFIX}/health" and m_seq(m) > above]
    return bool(late) and late[-1]["outbox_depth"] <= 20


def m_seq(message: Received) -> int:
    seq = message.json.get("seq") if message.payload else None
    return seq if isinstance(seq, int) else -1


def run_until(sub: Collector, cmd: list[str], n: int, what: str) -> list[Received]:
    """Start the agent, wait for ``n`` seqs above what was seen, SIGKILL it."""
    before = max(by_seq(sub.snapshot()), default=-1)
    proc = spawn(cmd)
    try:
        return sub.wait_for(lambda ms: max(by_seq(ms), default=-1) >= before + n, 60, what)
    finally:
        stop(proc, signal.SIGKILL)


def report(case: str, seen: dict[int, set[bytes]], resent: int, extra: str = "") -> None:
    top = max(seen)
    missing = top + 1 - len(seen)
    print(f"\nfault {case}: highest seq {top}, missing {missing}, re-sent {resent} {extra}")


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_outbox_heals_and_no_seq_is_given_twice(mosquitto, agent_cmd, state_dir, case):
    with Collector(mosquitto.port, f"{PREFIX}/#", persistent=True) as sub:
        run_until(sub, agent_cmd, 80, "a first run of readings")
        first = by_seq(sub.snapshot())
        DAMAGE[case](state_dir)
        proc = spawn(agent_cmd)
        try:
            top = max(first)
            got = sub.wait_for(lambda ms: settled(ms, top + 80), 60, "the room reporting again")
        finally:
            err = stop(proc)
    assert proc.returncode == 0, err
    seen = by_seq(got)
    twice = {s: p for s, p in seen.items() if len(p) > 1}
    assert not twice, f"{len(twice)} seqs were given to two different readings"
    report(case, seen, resent(got), f"faults {health_faults(got)[-1:]}")
    aside = list(state_dir.glob(OUTBOX + ".corrupt-*"))
    if case in {"truncated", "header", "middle-page"}:
        assert aside, "the damaged file is kept for inspection"
        assert any(any(f.startswith("outbox_") for f in fs) for fs in health_faults(got))


def test_after_a_power_cut_no_delivered_seq_is_handed_out_again(mosquitto, agent_cmd, state_dir):
    """A power cut: the outbox rolls back to an older consistent copy, the witness in the
    page cache is gone; only the fsynced reservation survives."""
    with Collector(mosquitto.port, f"{PREFIX}/#", persistent=True) as sub:
        proc = spawn(agent_cmd)
        try:
            sub.wait_for(lambda ms: len(by_seq(ms)) >= 30, 60, "a first run of readings")
            older = state_dir / "older.sqlite"
            src = sqlite3.connect(state_dir / OUTBOX)
            dst = sqlite3.connect(older)
            src.backup(dst)  # a consistent copy: what the card held before the last commits
            src.close()
            dst.close()
            mark = SeqMark(state_dir / (OUTBOX + ".seq"))
            mark.open()
            old_witness = mark.witness
            mark.close()
            assert old_witness is not None
            top = max(by_seq(sub.snapshot()))
            sub.wait_for(lambda ms: max(by_seq(ms)) >= top + 40, 60, "readings after the copy")
        finally:
            stop(proc, signal.SIGKILL)
        for f in files(state_dir):
            f.unlink(missing_ok=True)
        older.replace(state_dir / OUTBOX)
        # after the reboot the witness on the card is an older one, from the previous boot
        with (state_dir / (OUTBOX + ".seq")).open("r+b") as f:
            f.seek(witness_offset())
            f.write(pack_witness(Witness("the-boot-before", old_witness.next_seq, 0, 0)))
        delivered = max(by_seq(sub.snapshot()))
        second = spawn(agent_cmd)
        try:
            got = sub.wait_for(
                lambda ms: max(by_seq(ms)) > delivered + 40, 60, "the room after the power cut"
            )
        finally:
            err = stop(second)
    assert second.returncode == 0, err
    seen = by_seq(got)
    twice = {s for s, p in seen.items() if len(p) > 1}
    assert not twice, f"{len(twice)} delivered seqs were given to new readings"
    after = sorted(s for s in seen if s > delivered)
    report("power-cut", seen, resent(got), f"jump {after[0] - delivered - 1} (at most {STEP})")


@pytest.mark.parametrize(
    "content",
    ["null", "[]", "{broken", '{"a/1": {"borrower": null, "due": "2026-11-24T18:00:00"}}'],
    ids=["null", "list", "broken", "due-without-zone"],
)
def test_a_bad_loans_file_is_moved_aside_and_the_room_reports(
    mosquitto, agent_cmd, state_dir, content
):
    (state_dir / LOANS).write_text(content)
    with Collector(mosquitto.port, f"{PREFIX}/#") as sub:
        proc = spawn(agent_cmd)
        try:
            got = sub.wait_for(
                lambda ms: any("loans" in " ".join(f) for f in health_faults(ms)),
                60,
                "the bad loans file reported in health",
            )
            sub.wait_for(
                lambda ms: sum(m.topic.endswith("/lockers/a") for m in ms) >= 3,
                60,
                "the lockers reporting",
            )
        finally:
            err = stop(proc)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    assert "crashed" not in json.dumps(health_faults(got))
    assert list(state_dir.glob(LOANS + ".corrupt-*")), "kept for inspection"
