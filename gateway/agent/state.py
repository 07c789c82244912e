"""The outbox's companions: the ``seq`` high-water mark, its database settings, and healing.

Why a mark outside the outbox: ``synchronous=NORMAL`` can roll back the last commits on a power
cut, and a damaged, emptied or deleted outbox forgets its ``seq`` altogether; either way a
restart would hand out numbers already delivered, and the central side could no longer tell
loss from duplicates. The mark file keeps two kinds of record:

- a **reservation** (durable, fsynced): no seq at or above ``reserved`` was ever handed out.
  It is written ahead in steps (``STEP`` numbers at a time), so it costs one fsync per
  thousand readings, not one per reading. After a power cut the next seq is ``reserved``: a
  jump of up to ``STEP`` unused numbers, never a number twice. A clean stop writes the exact
  next seq, so a clean restart jumps nothing.
- a **witness** (page cache only, written with every commit): the exact next seq and the rows
  in the outbox, with the kernel's boot id. A crashed process loses nothing from the page
  cache, so on the same boot the witness is exact: a killed agent, or an outbox destroyed while
  the Pi stayed up, continues at exactly the next number (no jump, no false loss).

The witness also lists the seqs the broker acknowledged whose delete is not committed yet
(ranges, in a slot of their own): deletes are committed in bulk every ``delete_interval_s``,
and without this list a crash would send all of them again. With it, a restart deletes them
first and re-sends only what was acknowledged after the last commit. An acknowledgement is a
fact forever (a seq is never reused), so an older list read after a power cut is still true.

The file has fixed-size slots (two reservations used in turn, one witness, the acknowledged
ranges), each with a CRC, overwritten in place: a torn write spoils one slot, never both
reservations, and a full disk does not stop it (no new blocks are needed, unlike
write-and-rename). A file from an older release lacks the last slot and reads as "none".
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import sqlite3
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

_LOGGER = logging.getLogger(__name__)

#: The kernel's id of this boot: a different one means the page cache did not survive.
BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")
#: Numbers reserved per durable write of the mark.
STEP = 1000
_SLOT = 512
_SLOTS = 3  # reservation A, reservation B, witness
_WITNESS = 2
#: The acknowledged ranges fill the file up to one page (after the three slots).
_ACKED_AT = _SLOT * _SLOTS
_ACKED_SIZE = 4096 - _ACKED_AT
#: Damaged outboxes kept for inspection (newest first); older ones are deleted.
KEEP_ASIDE = 3
#: Bisection steps spent salvaging one damaged file before the rest is given up.
_SALVAGE_QUERIES = 20_000

#: SQLite's primary result codes that mean "the file is damaged", not "busy" or "full".
_CORRUPT_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB


#: SQLITE_FULL, and SQLITE_IOERR_SHMSIZE (the WAL index could not grow: no space for it).
_FULL_CODES = frozenset({13})
_SHMSIZE = 10 | (19 << 8)


def is_corruption(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in _CORRUPT_CODES


def is_disk_full(exc: BaseException) -> bool:
    """The disk is full: a fault that heals when space returns, not a reason to exit."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and ((code & 0xFF) in _FULL_CODES or code == _SHMSIZE)


def boot_id(path: Path = BOOT_ID_FILE) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None  # not Linux: the witness is never trusted, a crash jumps like a power cut


@dataclass(frozen=True, slots=True)
class Reservation:
    gen: int
    #: No seq at or above this was handed out (exact after a clean stop).
    reserved: int
    clean: bool = False
    #: Readings lost with damaged outboxes, and rows recovered from them, since install.
    lost: int = 0
    recovered: int = 0
    #: A copy of the outbox's dropped count, so a lost outbox does not reset it.
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class Witness:
    boot: str | None
    next_seq: int
    #: Rows in the outbox, and of them not yet acknowledged, at the last commit.
    rows: int
    waiting: int = 0


def _pack(record: object, size: int = _SLOT) -> bytes:
    body = json.dumps(record, separators=(",", ":")).encode()
    data = b"%08x" % zlib.crc32(body) + body
    if len(data) > size:
        raise ValueError("mark record too large")
    return data.ljust(size, b"\0")


def _load(raw: bytes) -> object:
    data = raw.rstrip(b"\0")
    if len(data) < 9:
        return None
    try:
        if int(data[:8], 16) != zlib.crc32(data[8:]):
            return None
        return json.loads(data[8:])
    except ValueError:
        return None


def _unpack(raw: bytes) -> dict[str, object] | None:
    value = _load(raw)
    return value if isinstance(value, dict) else None


def ranges(seqs: set[int]) -> list[tuple[int, int]]:
    """Consecutive runs of ``seqs`` as inclusive ``(first, last)`` pairs, ascending."""
    out: list[tuple[int, int]] = []
    for seq in sorted(seqs):
        if out and out[-1][1] == seq - 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


def _pack_acked(runs: list[tuple[int, int]]) -> bytes:
    """As many runs as fit, the longest first: one left out is merely sent again."""
    kept = sorted(runs, key=lambda r: r[1] - r[0], reverse=True)
    while True:
        try:
            return _pack(sorted(kept), _ACKED_SIZE)
        except ValueError:
            kept = kept[: len(kept) * 3 // 4]


def pack_witness(witness: Witness) -> bytes:
    """One witness slot as stored (tests use it to model a reboot)."""
    w = witness
    return _pack({"boot": w.boot, "next": w.next_seq, "rows": w.rows, "waiting": w.waiting})


def witness_offset() -> int:
    return _WITNESS * _SLOT


class SeqMark:
    """The mark file; every write is in place, reservations fsynced, the witness not."""

    def __init__(self, path: Path, *, boot_id_file: Path = BOOT_ID_FILE) -> None:
        self.path = path
        self.boot = boot_id(boot_id_file)
        self._fd: int | None = None
        self.reservation: Reservation | None = None
        self.witness: Witness | None = None
        #: Seqs the broker acknowledged, by the last witness (inclusive ranges).
        self.acked: list[tuple[int, int]] = []

    def open(self) -> None:
        """Read the records (or create the file); raises OSError if it cannot be created."""
        created = not self.path.exists()
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        raw = os.pread(self._fd, _ACKED_AT + _ACKED_SIZE, 0)
        if len(raw) < _ACKED_AT + _ACKED_SIZE:
            try:
                os.pwrite(self._fd, raw + b"\0" * (_ACKED_AT + _ACKED_SIZE - len(raw)), 0)
                os.fsync(self._fd)
            except OSError:
                if len(raw) < _ACKED_AT:
                    raise  # the reservations need their slots; the acked list can wait
        if created:
            _fsync_dir(self.path.parent)
        found = []
        for i in (0, 1):
            rec = _unpack(raw[i * _SLOT : (i + 1) * _SLOT])
            if rec is not None:
                try:
                    found.append(Reservation(**rec))  # type: ignore[arg-type]
                except TypeError:
                    continue
        self.reservation = max(found, key=lambda r: r.gen) if found else None
        w = _unpack(raw[_WITNESS * _SLOT : (_WITNESS + 1) * _SLOT])
        if w is not None:
            boot, nxt, rows, waiting = w.get("boot"), w.get("next"), w.get("rows"), w.get("waiting")
            if isinstance(nxt, int) and isinstance(rows, int) and isinstance(waiting, int):
                self.witness = Witness(boot if isinstance(boot, str) else None, nxt, rows, waiting)
        runs = _load(raw[_ACKED_AT:])
        if isinstance(runs, list):
            self.acked = [
                (r[0], r[1])
                for r in runs
                if isinstance(r, list) and len(r) == 2 and all(isinstance(x, int) for x in r)
            ]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @property
    def witness_trusted(self) -> bool:
        """Written during this boot: the page cache that held it is the one we read."""
        w = self.witness
        return w is not None and self.boot is not None and w.boot == self.boot

    def reserve(self, reserved: int, *, clean: bool = False, **counts: int) -> None:
        """Durably record ``reserved`` (and the counters); returns after fsync."""
        if self._fd is None:
            raise OSError("the seq mark is not open")
        old = self.reservation or Reservation(gen=0, reserved=0)
        new = Reservation(
            gen=old.gen + 1,
            reserved=reserved,
            clean=clean,
            lost=counts.get("lost", old.lost),
            recovered=counts.get("recovered", old.recovered),
            dropped=counts.get("dropped", old.dropped),
        )
        os.pwrite(self._fd, _pack(asdict(new)), (new.gen % 2) * _SLOT)
        os.fsync(self._fd)
        self.reservation = new

    def witness_write(
        self, next_seq: int, rows: int, waiting: int, acked: list[tuple[int, int]] | None = None
    ) -> None:
        """Exact for a crash on this boot; never fsynced (one page-cache write per commit).

        ``acked`` (acknowledged, delete not committed) is rewritten only when given.
        """
        if self._fd is None:
            return
        self.witness = Witness(self.boot, next_seq, rows, waiting)
        data = pack_witness(self.witness)
        if acked is not None:
            data += _pack_acked(acked)
            self.acked = acked
        os.pwrite(self._fd, data, _WITNESS * _SLOT)  # one write: both slots are adjacent


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- the database ------------------------------------------------------------------------------
SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    live INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class DamagedError(sqlite3.DatabaseError):
    """``quick_check`` found damage that no statement has tripped over yet."""


def quick_check(db: sqlite3.Connection) -> None:
    result = db.execute("PRAGMA quick_check").fetchall()
    if result != [("ok",)]:
        raise DamagedError("; ".join(str(r[0]) for r in result[:3]))


def connect(path: Path, *, check: bool) -> sqlite3.Connection:
    """The outbox database with its settings; ``check`` looks for damage first."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        # rows are a few hundred bytes: 1 KiB pages mean a commit of one report tick
        # rewrites about 1 KiB per touched page instead of 4 (only takes effect on a new file)
        db.execute("PRAGMA page_size=1024")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        # rows are appended and deleted in order: a small page cache is enough, and RSS
        # on a Pi is worth more than the 2 MB default
        db.execute("PRAGMA cache_size=-256")
        if check:
            # a damaged page would otherwise surface mid-replay, as a crash loop
            quick_check(db)
        db.executescript(SCHEMA)
    except BaseException:
        db.close()
        raise
    return db


def remember(recent: dict[int, None], seq: int, limit: int = 65_536) -> None:
    """A bounded, insertion-ordered set of recent seqs."""
    recent[seq] = None
    while len(recent) > limit:
        del recent[next(iter(recent))]


# -- healing ----------------------------------------------------------------------------------
def move_aside(path: Path, keep: int = KEEP_ASIDE) -> Path:
    """Move a damaged database (and its WAL) aside for inspection; keep the newest ``keep``."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    aside = path.with_name(f"{path.name}.corrupt-{stamp}-{os.getpid()}")
    for suffix in ("", "-wal", "-shm"):
        src = path.with_name(path.name + suffix)
        if src.exists():
            src.replace(aside.with_name(aside.name + suffix))
    kept = sorted(
        (
            p
            for p in path.parent.glob(f"{path.name}.corrupt-*")
            if not p.name.endswith(("-wal", "-shm"))
        ),
        key=lambda p: p.stat().st_mtime_ns,
        reverse=True,
    )
    for old in kept[keep:]:
        for suffix in ("", "-wal", "-shm"):
            old.with_name(old.name + suffix).unlink(missing_ok=True)
    _LOGGER.warning("damaged %s moved aside to %s", path, aside)
    return aside


def move_file_aside(path: Path, keep: int = KEEP_ASIDE) -> Path:
    """The same for a small JSON state file (the loans)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    aside = path.with_name(f"{path.name}.corrupt-{stamp}-{os.getpid()}")
    shutil.move(path, aside)
    kept = sorted(
        path.parent.glob(f"{path.name}.corrupt-*"), key=lambda p: p.stat().st_mtime_ns, reverse=True
    )
    for old in kept[keep:]:
        old.unlink(missing_ok=True)
    return aside


@dataclass
class Salvage:
    """What could be read back from a damaged outbox."""

    rows: list[tuple[int, str, bytes, int]]
    dropped: int = 0
    #: Seqs in ranges that could not be read at all (an upper bound on what was there).
    unreadable: int = 0


def salvage(path: Path, lo: int, hi: int) -> Salvage:
    """Read every row SQLite can still read, bisecting around damaged pages.

    ``lo``/``hi`` bound the seqs to look for when the table's own bounds cannot be read.
    """
    out = Salvage(rows=[])
    try:
        db = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error:
        return out
    try:
        try:
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except sqlite3.Error:
            out.unreadable = hi - lo  # not even the schema reads: nothing to bisect
            return out
        # the counter is also kept in the mark, so an unreadable one costs nothing
        with contextlib.suppress(sqlite3.Error, TypeError, ValueError):
            out.dropped = int(
                db.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()[0]
            )
        try:
            first, last = db.execute("SELECT MIN(seq), MAX(seq) FROM outbox").fetchone()
            if isinstance(first, int) and isinstance(last, int):
                lo, hi = first, last + 1
        except sqlite3.Error:
            pass  # bisect the whole plausible range
        found: dict[int, tuple[int, str, bytes, int]] = {}
        stack = [(lo, hi)]
        budget = _SALVAGE_QUERIES
        while stack:
            a, b = stack.pop()
            if a >= b:
                continue
            if budget <= 0:
                out.unreadable += b - a
                continue
            budget -= 1
            last_good = a - 1
            try:
                cur = db.execute(
                    "SELECT seq, topic, payload, live FROM outbox WHERE seq >= ? AND seq < ? "
                    "ORDER BY seq",
                    (a, b),
                )
                for seq, topic, payload, live in cur:
                    if isinstance(seq, int) and isinstance(topic, str) and payload is not None:
                        found[seq] = (seq, topic, bytes(payload), 1 if live else 0)
                    last_good = seq if isinstance(seq, int) else last_good
            except sqlite3.Error:
                a = max(a, last_good + 1)
                if b - a <= 1:
                    out.unreadable += b - a
                else:
                    mid = (a + b) // 2
                    stack += [(mid, b), (a, mid)]
        out.rows = [found[s] for s in sorted(found)]
    finally:
        db.close()
    return out
