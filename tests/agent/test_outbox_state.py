"""The outbox's seq mark and its accounting, in process (the fault suite runs the real agent).

A crash is modelled by leaving the outbox without ``close`` (its file handles are dropped with
the object); a power cut by a different boot id, as the kernel gives after a reboot.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from gateway.agent import outbox as outbox_module
from gateway.agent.outbox import Outbox
from gateway.agent.state import STEP
from tests.agent.faultkit import fill, tmpfs


def put(box: Outbox, n: int, topic: str = "t/x") -> list[int]:
    seqs = []
    for _ in range(n):
        seq = box.allocate_seq()
        box.put(seq, topic, b"{}", True)
        seqs.append(seq)
    return seqs


def boot(tmp_path: Path, value: str) -> Path:
    path = tmp_path / "boot_id"
    path.write_text(value + "\n")
    return path


def crash(box: Outbox) -> None:
    """Leave without a clean stop: no final mark, as after SIGKILL."""
    box.db.close()
    box.mark.close()
    del box
    gc.collect()


def test_a_deleted_outbox_continues_at_exactly_the_next_seq_on_the_same_boot(tmp_path: Path):
    path, boot_id = tmp_path / "o.sqlite", boot(tmp_path, "boot-1")
    box = Outbox(path, 100, boot_id_file=boot_id)
    box.open()
    put(box, 7)
    box.flush()
    crash(box)
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    with Outbox(path, 100, boot_id_file=boot_id) as again:
        assert again.next_seq == 7, "no jump, no number twice"
        assert again.lost == 7, "the waiting readings are counted, not forgotten"
        assert "outbox_lost:7" in again.faults


def test_after_a_power_cut_seq_jumps_above_every_reserved_number(tmp_path: Path):
    path = tmp_path / "o.sqlite"
    box = Outbox(path, 100, boot_id_file=boot(tmp_path, "boot-1"))
    box.open()
    box.flush()
    older = path.read_bytes()  # what the card held before the last commits
    put(box, 5)
    box.flush()
    crash(box)
    path.write_bytes(older)  # the power cut took the commits that were not on the card
    with Outbox(path, 100, boot_id_file=boot(tmp_path, "boot-2")) as again:
        assert again.next_seq == STEP, "the durable reservation, not the rolled-back outbox"


def test_a_clean_stop_jumps_nothing_even_across_a_reboot(tmp_path: Path):
    path = tmp_path / "o.sqlite"
    with Outbox(path, 100, boot_id_file=boot(tmp_path, "boot-1")) as box:
        put(box, 5)
    with Outbox(path, 100, boot_id_file=boot(tmp_path, "boot-2")) as again:
        assert again.next_seq == 5
        assert again.lost == 0


def test_reservations_are_written_ahead_in_steps(tmp_path: Path):
    with Outbox(tmp_path / "o.sqlite", 10_000, boot_id_file=boot(tmp_path, "b")) as box:
        first = box.mark.reservation
        assert first is not None
        put(box, STEP - 1)
        assert box.mark.reservation == first, "no durable write per reading"
        put(box, 2)
        assert box.mark.reservation is not None
        assert box.mark.reservation.reserved == first.reserved + STEP


def test_a_dropped_row_acknowledged_afterwards_is_not_counted_dropped(tmp_path: Path):
    with Outbox(tmp_path / "o.sqlite", 10, boot_id_file=boot(tmp_path, "b")) as box:
        in_flight = put(box, 10)
        box.flush()  # all ten are handed to the link and sent
        put(box, 4)
        box.flush()  # four more: the four oldest, still in flight, are dropped
        assert box.dropped == 4
        for seq in in_flight[:4]:
            box.ack(seq)  # ... and their PUBACKs arrive: the broker has them
        assert box.dropped == 0, "only what the broker never acknowledged is dropped"
        box.flush()
        assert box.depth == 10
    with Outbox(tmp_path / "o.sqlite", 10, boot_id_file=boot(tmp_path, "b")) as again:
        assert again.dropped == 0, "the corrected count is what is stored"


def test_acknowledged_rows_are_not_sent_again_after_a_crash(tmp_path: Path):
    path, boot_id = tmp_path / "o.sqlite", boot(tmp_path, "b")
    box = Outbox(path, 100, boot_id_file=boot_id)
    box.open()
    seqs = put(box, 10)
    box.flush()
    for seq in seqs[:6]:
        box.ack(seq)
    box.flush(deletes=False)  # a commit without the bulk delete: the mark lists the PUBACKs
    crash(box)
    with Outbox(path, 100, boot_id_file=boot_id) as again:
        assert all(again.is_acked(s) for s in seqs[:6]), "skipped by the replay"
        assert not any(again.is_acked(s) for s in seqs[6:])
        assert again.depth == 4


def test_a_full_disk_holds_rows_for_the_link_and_writes_them_when_space_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(outbox_module, "HELD_MAX", 40)
    with tmpfs(tmp_path / "disk", "1m") as disk:
        box = Outbox(disk / "o.sqlite", 10_000, boot_id_file=boot(tmp_path, "b"))
        with box:
            put(box, 5)
            box.flush()
            filler = fill(disk)
            held = [_put_big(box) for _ in range(30)]
            assert box.flush(), "held rows go to the link all the same"
            assert box.disk_full
            assert "disk_full" in box.faults
            assert box.visible_seq == held[-1] > box.committed_seq
            assert [r.seq for r in box.rows_after(4, box.visible_seq, 100)] == held
            for seq in held[:10]:
                box.ack(seq)  # delivered: never written
            assert box.is_acked(held[0])
            more = [_put_big(box) for _ in range(30)]  # 50 held: 10 pushed out of memory
            assert "disk_unkept:10" in box.faults
            filler.unlink()
            box.flush()
            assert "disk_full" not in box.faults
            kept = held[10:] + more
            stored = [r.seq for r in box.rows_after(4, box.committed_seq, 100)]
            assert stored == kept[10:], "what was acknowledged or pushed out is not written"


def _put_big(box: Outbox) -> int:
    seq = box.allocate_seq()
    box.put(seq, "t/x", b"x" * 4000, True)
    return seq
