"""The writer half of the ingest: batches, the writer thread, and acknowledgement after write.

Kept apart from the MQTT half (``service.py``) so each stays readable; ``Ingest`` mixes it in
and owns every attribute declared below. What it promises: a message is acknowledged only after
its lines are stored or proven bad on their own (``writers.py``); while InfluxDB does not take
a batch it is held and retried, said once in the log and in ``Stats``; an error that is not the
database's is counted as a restart and retried the same way; and the loop always states what it
does and by when (``_set_state``), so ``/healthz`` and ``Ingest.run`` can tell waiting from stuck.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import paho.mqtt.client as mqtt
from prometheus_client import Histogram

from gateway.central.config import CentralConfig
from gateway.central.ingest.samples import RejectSampler
from gateway.central.writers import BadRequestError, Writer, WriterUnavailableError

_LOGGER = logging.getLogger("gateway.central.ingest.service")


@dataclass
class Batch:
    lines: list[str] = field(default_factory=list)
    #: (connection generation, mid) of each QoS 1 message, in arrival order
    acks: list[tuple[int, int]] = field(default_factory=list)
    messages: int = 0
    started: float = 0.0


class WriterStats(Protocol):
    """The counters of ``service.Stats`` that the writer keeps."""

    writer_up: bool
    write_failures: int
    held: dict[str, int]
    restarts: dict[str, int]
    batches: int
    points_written: int
    points_refused: int
    acked: int


class BatchWriting:
    config: CentralConfig
    writer: Writer
    stats: WriterStats
    sampler: RejectSampler
    client: mqtt.Client
    retry_s: float
    retry_max_s: float
    grace_s: float
    write_seconds: Histogram
    batch_lines_hist: Histogram
    _cond: threading.Condition
    _batch: Batch
    _writing: int
    _generation: int
    _stopping: threading.Event
    _writer_state: str
    _writer_detail: str
    _writer_deadline: float | None
    _held_since: float | None
    _write_started: float
    #: None: say outages in the log; else told (ended?, why) instead
    outage_hook: Callable[[bool, str], None] | None

    def _take_batch(self) -> Batch | None:
        interval = self.config.ingest.batch_interval_s
        size = self.config.ingest.batch_lines
        with self._cond:
            while True:
                batch = self._batch
                if batch.messages:
                    due = batch.started + interval - time.monotonic()
                    if due <= 0 or len(batch.lines) >= size or self._stopping.is_set():
                        self._batch = Batch()
                        self._writing = batch.messages
                        return batch
                elif self._stopping.is_set():
                    return None
                else:
                    due = interval
                self._set_state("idle", max(due, 0.0), "waiting for messages")
                self._cond.wait(due)

    def _set_state(self, state: str, within_s: float | None, detail: str = "") -> None:
        """Say what the writer loop does and how long that may take (None: the writer's own
        deadline applies)."""
        self._writer_state, self._writer_detail = state, detail
        self._writer_deadline = None if within_s is None else time.monotonic() + within_s

    def _writer_main(self) -> None:
        """The writer thread. If it ends with an error, ``run`` sees the thread gone."""
        try:
            self._writer_loop()
        except Exception:
            _LOGGER.exception("the writer loop ended with an error; the ingest exits")
            raise
        finally:
            self._set_state("ended", None)

    def _writer_loop(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            written = self._write(batch)
            if written:
                self._ack(batch)
            with self._cond:
                self._writing = 0
            if not written:
                return

    def _write(self, batch: Batch) -> bool:
        """Write every line of the batch, holding it while the database does not take it;
        False only when told to stop first (the broker then keeps the messages)."""
        size = self.config.ingest.batch_lines
        done = 0
        delay = self.retry_s
        while done < len(batch.lines):
            chunk = batch.lines[done : done + size]
            if self.stats.writer_up:
                self._set_state("writing", None, f"{len(chunk)} lines")
            else:  # an attempt within an outage: keep saying why
                self._set_state("retrying", None, self._writer_detail)
            started = self._write_started = time.monotonic()
            try:
                result = self.writer.write(chunk)
            except (WriterUnavailableError, BadRequestError) as exc:
                self._hold(exc.reason, str(exc), batch)
            except Exception as exc:  # noqa: BLE001 - a bug, not the database: held, counted
                self.stats.restarts["writer"] += 1
                self._hold("internal", repr(exc), batch)
            else:
                self.write_seconds.observe(time.monotonic() - started)
                self.batch_lines_hist.observe(len(chunk))
                if not self.stats.writer_up:
                    self._outage(over=True, what="")
                self.stats.writer_up = True
                self._held_since = None
                self.stats.batches += 1
                self.stats.points_written += result.written
                for line, reason in result.rejected:
                    self.stats.points_refused += 1
                    self.sampler.sample("influx_refused", reason[:300], "", line.encode())
                done += len(chunk)
                delay = self.retry_s
                continue
            wait = random.uniform(delay / 2, delay)
            self._set_state("retrying", wait + self.grace_s, self._writer_detail)
            if self._stopping.wait(wait):
                return False  # stopping while the database is away: the broker keeps it
            delay = min(delay * 2, self.retry_max_s)
            self._absorb(batch, done)
        return True

    def _hold(self, reason: str, error: str, batch: Batch) -> None:
        """Keep the batch unacknowledged; say so once per outage (with a traceback for ours)."""
        self.stats.write_failures += 1
        self.stats.held[reason] += 1
        self._writer_detail = f"InfluxDB not taking writes ({reason}): {error}"[:500]
        if self.stats.writer_up:
            self._held_since = time.monotonic()
            internal = reason == "internal"  # ours, not the database's: with a traceback
            self._outage(over=False, what=f"{reason}: {error}", n=batch.messages, trace=internal)
        self.stats.writer_up = False

    def _outage(self, *, over: bool, what: str, n: int = 0, trace: bool = False) -> None:
        """Say once that an outage began or ended: in the log, or to ``outage_hook`` (a worker
        of several tells the parent, which says it once for all)."""
        if self.outage_hook is not None:
            if trace:
                _LOGGER.error("the writer failed; holding its batch and retrying", exc_info=trace)
            self.outage_hook(over, what)
        elif over:
            _LOGGER.info("InfluxDB takes writes again")
        else:
            _LOGGER.error(
                "InfluxDB is not taking writes (%s); holding %d messages unacknowledged and "
                "retrying",
                what,
                n,
                exc_info=trace,
            )

    def _absorb(self, batch: Batch, done: int) -> None:
        """While a batch is held, take in what arrived since, up to a batch's worth: new lines
        that are stored prove that held lines failing alone are bad on their own (writers.py),
        so a bad first batch cannot hold everything after it forever."""
        with self._cond:
            more = self._batch
            if not more.messages or len(batch.lines) - done >= self.config.ingest.batch_lines:
                return
            self._batch = Batch()
            batch.lines += more.lines
            batch.acks += more.acks
            batch.messages += more.messages
            self._writing = batch.messages

    def held_seconds(self) -> float:
        since = self._held_since
        return 0.0 if since is None else time.monotonic() - since

    def _ack(self, batch: Batch) -> None:
        with self._cond:
            generation = self._generation
        acked = 0
        for gen, mid in batch.acks:
            if gen == generation:
                self.client.ack(mid, 1)
                acked += 1
        self.stats.acked += acked
