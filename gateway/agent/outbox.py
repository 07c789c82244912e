"""The SQLite outbox: every message is stored before it is sent and deleted after its PUBACK.

Why this shape:
- WAL with ``synchronous=NORMAL`` survives a killed process (the WAL is in the page cache) and
  loses at most the last commits on power loss, without an fsync per message.
- Inserts are buffered and committed together (``flush``), deletes of acknowledged messages
  ride along with the next commit: an SD card sees one small transaction per report tick
  instead of two per message. A message is only ever sent after it is committed, so a crash
  cannot publish a ``seq`` that a restart would hand out again.
- An acknowledged message whose delete was not committed yet is sent again after a crash:
  at-least-once, and harmless because the central side is idempotent (DESIGN.md "Flow").
- The size is bounded; beyond ``max_messages`` the oldest are dropped and counted.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from gateway.errors import OutboxError

_LOGGER = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    live INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Row:
    seq: int
    topic: str
    payload: bytes
    #: The topic's newest message is published retained (DESIGN.md "live: yes").
    live: bool


class Outbox:
    """Not thread-safe: owned by the agent's event loop."""

    def __init__(self, path: Path, max_messages: int) -> None:
        self.path = path
        self.max_messages = max_messages
        self._db: sqlite3.Connection | None = None
        self._next_seq = 0
        self._dropped = 0
        self._committed_seq = -1
        self._count = 0  # rows in the database after the last commit
        self._puts: list[Row] = []
        self._acks: set[int] = set()
        #: Transactions committed, for the benchmark of disk writes.
        self.commits = 0

    # -- lifecycle -----------------------------------------------------------------------
    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            # rows are a few hundred bytes: 1 KiB pages mean a commit of one report tick
            # rewrites about 1 KiB per touched page instead of 4 (only takes effect on a new file)
            db.execute("PRAGMA page_size=1024")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            # rows are appended and deleted in order: a small page cache is enough, and RSS
            # on a Pi is worth more than the 2 MB default
            db.execute("PRAGMA cache_size=-256")
            db.executescript(_SCHEMA)
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            max_row = db.execute("SELECT MAX(seq), COUNT(*) FROM outbox").fetchone()
        except sqlite3.Error as exc:
            raise OutboxError(f"{self.path}: cannot open the outbox: {exc}") from exc
        self._db = db
        self._count = int(max_row[1])
        highest = -1 if max_row[0] is None else int(max_row[0])
        self._next_seq = max(int(meta.get("next_seq", 0)), highest + 1)
        self._committed_seq = self._next_seq - 1
        self._dropped = int(meta.get("dropped", 0))
        _LOGGER.info(
            "outbox %s: %d waiting, next seq %d, %d dropped so far",
            self.path,
            self._count,
            self._next_seq,
            self._dropped,
        )

    def close(self) -> None:
        if self._db is not None:
            self.flush()
            self._db.close()
            self._db = None

    def __enter__(self) -> Outbox:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise OutboxError("outbox is not open")
        return self._db

    # -- writing ---------------------------------------------------------------------------
    def allocate_seq(self) -> int:
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def put(self, seq: int, topic: str, payload: bytes, live: bool) -> None:
        """Buffer a message; it becomes visible to ``rows_*`` after ``flush``."""
        self._puts.append(Row(seq, topic, payload, live))

    def ack(self, seq: int) -> None:
        """The broker has the message; delete it with the next commit."""
        self._acks.add(seq)

    @property
    def pending_puts(self) -> int:
        return len(self._puts)

    @property
    def pending_acks(self) -> int:
        return len(self._acks)

    def is_acked(self, seq: int) -> bool:
        return seq in self._acks

    def flush(self, *, deletes: bool = True) -> list[Row]:
        """Commit buffered inserts (and the deletes of acknowledged messages, unless
        ``deletes`` is False) in one transaction; return the new rows.

        Deleting in bulk now and then frees whole pages at once; deleting a few rows with
        every commit rewrites the same pages again and again.
        """
        if not deletes and self._count + len(self._puts) > self.max_messages:
            deletes = True  # acknowledged rows make room before any unsent one is dropped
        acks = self._acks if deletes else set()
        if not self._puts and not acks:
            return []
        puts = self._puts
        db = self.db
        try:
            db.execute("BEGIN")
            if puts:
                db.executemany(
                    "INSERT OR REPLACE INTO outbox (seq, topic, payload, live) VALUES (?,?,?,?)",
                    [(r.seq, r.topic, r.payload, int(r.live)) for r in puts],
                )
            deleted = 0
            if acks:
                cur = db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in acks])
                deleted = max(cur.rowcount, 0)
            count = self._count + len(puts) - deleted
            dropped_now = 0
            if count > self.max_messages:
                excess = count - self.max_messages
                cur = db.execute(
                    "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)",
                    (excess,),
                )
                dropped_now = max(cur.rowcount, 0)
                count -= dropped_now
            meta = [("next_seq", self._next_seq)]
            if dropped_now:
                meta.append(("dropped", self._dropped + dropped_now))
            db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", meta)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise OutboxError(f"{self.path}: cannot write the outbox: {exc}") from exc
        self.commits += 1
        self._puts = []
        if deletes:
            self._acks = set()
        self._count = count
        if dropped_now:
            self._dropped += dropped_now
            _LOGGER.warning(
                "outbox full (%d messages): dropped the %d oldest", self.max_messages, dropped_now
            )
        if puts:
            self._committed_seq = max(self._committed_seq, puts[-1].seq)
        return puts

    # -- reading ---------------------------------------------------------------------------
    @property
    def committed_seq(self) -> int:
        """Highest seq committed so far (-1 before the first)."""
        return self._committed_seq

    @property
    def depth(self) -> int:
        """Messages not yet acknowledged by the broker."""
        return max(0, self._count - len(self._acks)) + len(self._puts)

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def next_seq(self) -> int:
        return self._next_seq

    def latest_live(self, upto: int) -> list[Row]:
        """Newest committed message of each live topic with ``seq <= upto``, oldest first."""
        rows = self.db.execute(
            "SELECT MAX(seq), topic FROM outbox WHERE live = 1 AND seq <= ? GROUP BY topic",
            (upto,),
        ).fetchall()
        return self._fetch(sorted(int(r[0]) for r in rows))

    def rows_after(self, after: int, upto: int, limit: int) -> list[Row]:
        """Committed messages with ``after < seq <= upto``, oldest first."""
        cur = self.db.execute(
            "SELECT seq, topic, payload, live FROM outbox WHERE seq > ? AND seq <= ? "
            "ORDER BY seq LIMIT ?",
            (after, upto, limit),
        )
        return [Row(int(s), t, bytes(p), bool(lv)) for s, t, p, lv in cur]

    def _fetch(self, seqs: list[int]) -> list[Row]:
        out: list[Row] = []
        for start in range(0, len(seqs), 500):
            chunk = seqs[start : start + 500]
            marks = ",".join("?" * len(chunk))
            cur = self.db.execute(
                f"SELECT seq, topic, payload, live FROM outbox WHERE seq IN ({marks}) "  # noqa: S608 - only placeholders
                "ORDER BY seq",
                chunk,
            )
            out.extend(Row(int(s), t, bytes(p), bool(lv)) for s, t, p, lv in cur)
        return out
