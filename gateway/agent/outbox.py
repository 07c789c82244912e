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
- The size is bounded; beyond ``max_messages`` the oldest are dropped and counted. A dropped
  row whose PUBACK arrives afterwards was delivered after all and is counted out again: the
  count is of readings the broker never acknowledged.
- ``seq`` never goes back, and a damaged outbox heals (``state.py``): it is moved aside, what
  SQLite can still read is kept, the rest is counted (``lost``), and the room goes on.
- A full disk is a fault, not an exit: rows that cannot be committed are *held* in memory
  (bounded, ``HELD_MAX``) and handed to the link as they are, so live readings still reach a
  connected broker; every flush tries the commit again (as much as fits: a shorter prefix
  when the whole does not), a held row the broker acknowledged is never written at all, and
  what the bound pushes out is counted (``disk_unkept``). Their seqs are safe: the mark is
  overwritten in place and needs no new blocks.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from gateway.agent.state import (
    BOOT_ID_FILE,
    STEP,
    DamagedError,
    Salvage,
    SeqMark,
    connect,
    is_corruption,
    is_disk_full,
    move_aside,
    ranges,
    remember,
    salvage,
)
from gateway.errors import OutboxError

_LOGGER = logging.getLogger(__name__)

#: Dropped seqs remembered, so that a late PUBACK can count one out again.
_RECENT_DROPS = 65_536
#: Rows held in memory while the disk is full (a few hundred bytes each: about 3 MB).
HELD_MAX = 10_000
#: Commits tried per flush while the disk is full, each with half the rows of the one before.
_FULL_TRIES = 4


@dataclass(frozen=True, slots=True)
class Row:
    seq: int
    topic: str
    payload: bytes
    #: The topic's newest message is published retained (DESIGN.md "live: yes").
    live: bool


class Outbox:
    """Not thread-safe: owned by the agent's event loop."""

    def __init__(self, path: Path, max_messages: int, *, boot_id_file: Path = BOOT_ID_FILE) -> None:
        self.path = path
        self.max_messages = max_messages
        self.mark = SeqMark(path.with_name(path.name + ".seq"), boot_id_file=boot_id_file)
        self._db: sqlite3.Connection | None = None
        self._next_seq = 0
        self._reserved = 0
        self._dropped = 0
        self._dropped_dirty = False
        self._witnessed_acks = 0
        self._recent_drops: dict[int, None] = {}
        #: Readings lost with damaged outboxes, and rows recovered from them, since install.
        self.lost = 0
        self.recovered = 0
        self._committed_seq = -1
        self._visible_seq = -1
        self._count = 0  # rows in the database after the last commit
        #: Not committed yet; while the disk is full, also held (visible to the link).
        self._puts: dict[int, Row] = {}
        self._acks: set[int] = set()
        #: Held rows acknowledged (never written), remembered for ``is_acked``.
        self._acked_held: dict[int, None] = {}
        self.disk_full = False
        #: Readings pushed out of the bounded memory while the disk was full, since start.
        self.unkept = 0
        self._unkept_recent: dict[int, None] = {}
        #: Transactions committed, for the benchmark of disk writes.
        self.commits = 0

    # -- lifecycle -----------------------------------------------------------------------
    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.mark.open()
        except OSError as exc:
            raise OutboxError(f"{self.mark.path}: cannot open the seq mark: {exc}") from exc
        existed = self.path.exists() and self.path.stat().st_size > 0
        res, wit = self.mark.reservation, self.mark.witness
        got: Salvage | None = None
        try:
            db = connect(self.path, check=existed)
        except sqlite3.Error as exc:
            if not (isinstance(exc, DamagedError) or is_corruption(exc)):
                raise OutboxError(f"{self.path}: cannot open the outbox: {exc}") from exc
            db, got = self._heal(exc)
        recovered = got.rows if got else []
        healed = got is not None
        dropped_aside = got.dropped if got else 0
        try:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            max_row = db.execute("SELECT MAX(seq), COUNT(*) FROM outbox").fetchone()
        except sqlite3.Error as exc:
            db.close()
            raise OutboxError(f"{self.path}: cannot read the outbox: {exc}") from exc
        self._db = db
        self._count = int(max_row[1])
        highest = -1 if max_row[0] is None else int(max_row[0])
        outbox_next = max(int(meta.get("next_seq", 0)), highest + 1)
        self._next_seq = max(outbox_next, self._mark_next())
        self._committed_seq = self._visible_seq = self._next_seq - 1
        lost_now = 0
        rolled_back = wit is not None and wit.next_seq > outbox_next
        if wit is not None and (healed or not existed or rolled_back):
            # the witness counted the rows of the last commit: those not here any more, but
            # no more than were still waiting for the broker (the rest was delivered)
            # (an upper bound: which rows were the waiting ones is not known)
            gone = wit.rows - self._count
            if rolled_back and not healed and existed:
                gone = min(gone, wit.next_seq - outbox_next)  # only the newest commits went
            lost_now = max(0, min(wit.waiting, gone))
        self.lost = (res.lost if res else 0) + lost_now
        self.recovered = (res.recovered if res else 0) + len(recovered)
        self._dropped = max(int(meta.get("dropped", 0)), dropped_aside, res.dropped if res else 0)
        if lost_now or healed:
            _LOGGER.error(
                "outbox %s: %d rows recovered, about %d readings lost (%d so far); seq goes on "
                "at %d",
                self.path,
                len(recovered),
                lost_now,
                self.lost,
                self._next_seq,
            )
        self._reserve(self._next_seq + STEP)
        self._forget_acked()
        self._witness()
        _LOGGER.info(
            "outbox %s: %d waiting, next seq %d, %d dropped so far",
            self.path,
            self._count,
            self._next_seq,
            self._dropped,
        )

    def _heal(self, exc: sqlite3.Error) -> tuple[sqlite3.Connection, Salvage]:
        """Move the damaged file aside, start a new one with every row that still reads."""
        _LOGGER.error(
            "%s is damaged (%s): moving it aside, recovering what reads, starting anew",
            self.path,
            exc,
        )
        aside = move_aside(self.path)
        res, wit = self.mark.reservation, self.mark.witness
        hi = max(res.reserved if res else 0, wit.next_seq if wit else 0)
        got = salvage(aside, max(0, hi - 2 * self.max_messages - STEP), hi)
        try:
            db = connect(self.path, check=False)
            db.execute("BEGIN")
            db.executemany(
                "INSERT OR REPLACE INTO outbox (seq, topic, payload, live) VALUES (?,?,?,?)",
                got.rows,
            )
            db.execute("COMMIT")
        except sqlite3.Error as exc2:
            raise OutboxError(f"{self.path}: cannot start a new outbox: {exc2}") from exc2
        return db, got

    def _forget_acked(self) -> None:
        """What the broker acknowledged before a crash is not sent again: deleted with the
        next bulk delete, like any PUBACK (no write now, so a full disk changes nothing)."""
        for first, last in self.mark.acked:
            cur = self.db.execute("SELECT seq FROM outbox WHERE seq BETWEEN ? AND ?", (first, last))
            self._acks.update(int(r[0]) for r in cur)
        if self._acks:
            _LOGGER.info("outbox %s: %d rows were acknowledged already", self.path, len(self._acks))

    def _mark_next(self) -> int:
        """The next seq by the mark: above every number that may have left this gateway."""
        res, wit = self.mark.reservation, self.mark.witness
        if res is not None and res.clean:
            return res.reserved  # exact, written by a clean stop
        if self.mark.witness_trusted and wit is not None:
            return wit.next_seq  # exact: a crash on this boot keeps the page cache
        return res.reserved if res is not None else 0  # a power cut: jump the reservation

    def _reserve(self, upto: int) -> None:
        try:
            self.mark.reserve(upto, lost=self.lost, recovered=self.recovered, dropped=self._dropped)
        except OSError as exc:
            raise OutboxError(f"{self.mark.path}: cannot reserve seq numbers: {exc}") from exc
        self._reserved = upto

    def _witness(self) -> None:
        try:
            waiting = max(0, self._count - len(self._acks))
            self._witnessed_acks = len(self._acks)
            # above every seq the link may have sent; not ``_next_seq``: numbers taken for
            # readings not committed yet never left, and a crash may hand them out again
            nxt = self._visible_seq + 1
            self.mark.witness_write(nxt, self._count, waiting, ranges(self._acks))
        except OSError as exc:  # the reservation still holds: at worst a jump after a crash
            _LOGGER.warning("%s: cannot update the seq witness: %s", self.mark.path, exc)

    def close(self) -> None:
        if self._db is not None:
            try:
                self.flush()
                if self._puts:
                    self.unkept += len(self._puts)
                    _LOGGER.error(
                        "disk full at stop: %d readings the broker did not acknowledge are lost",
                        len(self._puts),
                    )
            finally:
                self._db.close()
                self._db = None
            # a clean stop: the next start continues at exactly this number
            with contextlib.suppress(OutboxError):
                self.mark.reserve(
                    self._next_seq,
                    clean=True,
                    lost=self.lost,
                    recovered=self.recovered,
                    dropped=self._dropped,
                )
            self._witness()
        self.mark.close()

    @property
    def faults(self) -> list[str]:
        """Figures of damaged outboxes for ``health.faults``: cumulative, never forgotten."""
        out = []
        if self.lost:
            out.append(f"outbox_lost:{self.lost}")
        if self.recovered:
            out.append(f"outbox_recovered:{self.recovered}")
        if self.disk_full:
            out.append("disk_full")
        if self.unkept:
            out.append(f"disk_unkept:{self.unkept}")
        return out

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
        if seq >= self._reserved:
            self._reserve(seq + STEP)  # durable before the number can leave the gateway
        self._next_seq += 1
        return seq

    def put(self, seq: int, topic: str, payload: bytes, live: bool) -> None:
        """Buffer a message; it becomes visible to ``rows_*`` after ``flush``."""
        self._puts[seq] = Row(seq, topic, payload, live)
        if self.disk_full and len(self._puts) > HELD_MAX:  # keep the newest that fit
            old = next(iter(self._puts))
            del self._puts[old]
            self.unkept += 1
            remember(self._unkept_recent, old)

    def ack(self, seq: int) -> None:
        """The broker has the message; delete it with the next commit."""
        if self._puts.pop(seq, None) is not None:
            remember(self._acked_held, seq)  # held on a full disk, delivered: never written
            return
        if seq in self._unkept_recent:
            del self._unkept_recent[seq]  # pushed out of memory, yet delivered
            self.unkept -= 1
            return
        if seq in self._recent_drops:
            # dropped while in flight, yet delivered: not a loss after all
            del self._recent_drops[seq]
            self._dropped -= 1
            self._dropped_dirty = True
            return
        self._acks.add(seq)

    @property
    def pending_puts(self) -> int:
        return len(self._puts)

    @property
    def pending_acks(self) -> int:
        return len(self._acks)

    def is_acked(self, seq: int) -> bool:
        return seq in self._acks or seq in self._acked_held

    def witness_acks(self) -> None:
        """List the PUBACKs since the last commit in the mark: a crash now will not resend."""
        if len(self._acks) != self._witnessed_acks:
            self._witness()

    def flush(self, *, deletes: bool = True) -> list[Row]:
        """Commit buffered inserts (and the deletes of acknowledged messages, unless
        ``deletes`` is False) in one transaction; return the rows new to the link.

        Deleting in bulk now and then frees whole pages at once; deleting a few rows with
        every commit rewrites the same pages again and again. On a full disk the rows that do
        not fit are held and returned all the same (see the module's docstring).
        """
        if not deletes and self._count + len(self._puts) > self.max_messages:
            deletes = True  # acknowledged rows make room before any unsent one is dropped
        acks = self._acks if deletes else set()
        if not self._puts and not acks and not self._dropped_dirty:
            if len(self._acks) != self._witnessed_acks:
                self._witness()  # PUBACKs since the last commit: "waiting" stays honest
            return []
        rows = list(self._puts.values())
        n, done = len(rows), None
        for _ in range(_FULL_TRIES):
            try:
                done = self._commit(rows[:n], acks)
                break
            except OutboxError as exc:
                if not is_disk_full(exc.__cause__ or exc):
                    raise
                if n == 0:
                    break
                n //= 2  # keep as much as fits
        if done is None:
            return self._held(rows)
        count, gone = done
        puts = rows[:n]
        self.commits += 1
        for row in puts:
            del self._puts[row.seq]
        if deletes:
            self._acks = set()
        self._count = count
        self._dropped_dirty = False
        if puts:
            self._committed_seq = max(self._committed_seq, puts[-1].seq)
        if gone:
            self._dropped += len(gone)
            for seq in sorted(gone)[:_RECENT_DROPS]:
                remember(self._recent_drops, seq)
            _LOGGER.warning(
                "outbox full (%d messages): dropped the %d oldest", self.max_messages, len(gone)
            )
        if self._puts:
            return self._held(rows)
        if self.disk_full:
            self.disk_full = False
            _LOGGER.warning("disk has space again: the outbox is written as before")
        new = [r for r in puts if r.seq > self._visible_seq]
        self._visible_seq = max(self._visible_seq, self._committed_seq)
        self._witness()
        return new

    def _held(self, rows: list[Row]) -> list[Row]:
        """The disk is full: what did not fit stays in memory, visible to the link."""
        if not self.disk_full:
            self.disk_full = True
            _LOGGER.error(
                "%s: the disk is full; sending live readings without storing them (up to %d "
                "held in memory) and trying again with every commit",
                self.path,
                HELD_MAX,
            )
        new = [r for r in rows if r.seq > self._visible_seq]
        self._visible_seq = max([self._visible_seq, *(r.seq for r in rows[-1:])])
        self._witness()  # in place, no new blocks: every seq the link may send is below it
        return new

    def _commit(self, puts: list[Row], acks: set[int]) -> tuple[int, list[int]]:
        """One transaction; the row count after it and the seqs dropped for the bound."""
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
            gone: list[int] = []
            if count > self.max_messages:
                excess = count - self.max_messages
                gone = [
                    int(r[0])
                    for r in db.execute(
                        "DELETE FROM outbox WHERE seq IN "
                        "(SELECT seq FROM outbox ORDER BY seq LIMIT ?) RETURNING seq",
                        (excess,),
                    ).fetchall()
                ]
                count -= len(gone)
            meta = [("next_seq", self._next_seq)]
            if gone or self._dropped_dirty:
                meta.append(("dropped", self._dropped + len(gone)))
            db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", meta)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise OutboxError(f"{self.path}: cannot write the outbox: {exc}") from exc
        return count, gone

    # -- reading ---------------------------------------------------------------------------
    @property
    def committed_seq(self) -> int:
        """Highest seq committed so far (-1 before the first)."""
        return self._committed_seq

    @property
    def visible_seq(self) -> int:
        """Highest seq the link may send: committed, or held while the disk is full."""
        return self._visible_seq

    def _held_rows(self, after: int, upto: int) -> list[Row]:
        return [r for r in self._puts.values() if after < r.seq <= min(upto, self._visible_seq)]

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
        held = {r.topic: r for r in self._held_rows(-1, upto) if r.live}  # newer than any row
        out = self._fetch(sorted(int(s) for s, topic in rows if topic not in held))
        return sorted(out + list(held.values()), key=lambda r: r.seq)

    def rows_after(self, after: int, upto: int, limit: int) -> list[Row]:
        """Committed messages with ``after < seq <= upto``, oldest first."""
        cur = self.db.execute(
            "SELECT seq, topic, payload, live FROM outbox WHERE seq > ? AND seq <= ? "
            "ORDER BY seq LIMIT ?",
            (after, upto, limit),
        )
        out = [Row(int(s), t, bytes(p), bool(lv)) for s, t, p, lv in cur]
        if len(out) < limit and self._puts:
            out += self._held_rows(after, upto)[: limit - len(out)]  # above every stored row
        return out

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
