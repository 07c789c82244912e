"""The outbox on its own: what survives a restart, what is dropped and when."""

from __future__ import annotations

from pathlib import Path

from gateway.agent.outbox import Outbox


def put(box: Outbox, n: int, topic: str = "t/x") -> list[int]:
    seqs = []
    for _ in range(n):
        seq = box.allocate_seq()
        box.put(seq, topic, b"{}", True)
        seqs.append(seq)
    return seqs


def test_nothing_is_visible_before_commit_and_seq_survives_reopen(tmp_path: Path):
    path = tmp_path / "o.sqlite"
    with Outbox(path, 100) as box:
        put(box, 3)
        assert box.rows_after(-1, 10, 10) == [], "uncommitted rows are never sent"
        box.flush()
        assert [r.seq for r in box.rows_after(-1, 10, 10)] == [0, 1, 2]
        box.ack(0)
        box.flush(deletes=False)
        assert box.depth == 2, "an acknowledged row no longer counts as waiting"
    with Outbox(path, 100) as box:
        assert box.next_seq == 3
        assert [r.seq for r in box.rows_after(-1, 10, 10)] == [1, 2], "close() deletes acked rows"


def test_acknowledged_rows_make_room_before_unsent_ones_are_dropped(tmp_path: Path):
    with Outbox(tmp_path / "o.sqlite", 10) as box:
        for seq in put(box, 10):
            box.ack(seq)
        box.flush(deletes=False)  # acked, not yet deleted
        put(box, 5)
        box.flush(deletes=False)
        assert box.dropped == 0
        assert box.depth == 5


def test_latest_live_is_the_newest_per_topic(tmp_path: Path):
    with Outbox(tmp_path / "o.sqlite", 100) as box:
        put(box, 3, "a")
        put(box, 2, "b")
        box.flush()
        assert [(r.topic, r.seq) for r in box.latest_live(100)] == [("a", 2), ("b", 4)]
        assert [r.seq for r in box.latest_live(3)] == [2, 3]
