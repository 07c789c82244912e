"""``learnroom ingest``: MQTT to InfluxDB, acknowledging only what is written.

Receive path: paho-mqtt 2 in its own network thread (aiomqtt's unbounded queue receives
several times slower), MQTT 5 with a persistent session (fixed client id, ``clean_start``
off, session expiry) and a shared subscription, so several workers can split the load.
Every QoS 1 message is acknowledged by hand, and only after the batch holding it is in the
database: a SIGKILL at any moment leaves the unwritten messages with the broker, which sends
them again. Redelivery is harmless because a point with the same measurement, tags and time
overwrites itself (DESIGN.md "Flow").

Memory is bounded by the broker, not by us: MQTT 5's Receive Maximum (``max_pending``) is
how many unacknowledged messages the broker sends at once. While the database is down the
writer keeps retrying the same batch, nothing is acknowledged, and the broker holds the rest.

Refused messages are acknowledged with the batch they arrived in (acknowledgements stay in
order), counted by reason and sampled to a file; they never stall the valid ones.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.central.config import CentralConfig, subscription
from gateway.central.ingest.seqs import SeqTracker
from gateway.central.mapping import to_lines
from gateway.central.validate import REASONS, Accepted, Rejected, check
from gateway.central.writers import (
    BadRequestError,
    Writer,
    WriterUnavailableError,
)
from gateway.config import tls_context

_LOGGER = logging.getLogger(__name__)


@dataclass
class Batch:
    lines: list[str] = field(default_factory=list)
    #: (connection generation, mid) of each QoS 1 message, in arrival order
    acks: list[tuple[int, int]] = field(default_factory=list)
    messages: int = 0
    started: float = 0.0


@dataclass
class Stats:
    """Plain counters on the hot path; Prometheus reads them when scraped."""

    received: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    points_written: int = 0
    points_refused: int = 0
    batches: int = 0
    write_failures: int = 0
    acked: int = 0
    duplicates: int = 0
    lost: int = 0
    connected: bool = False
    writer_up: bool = True


class RejectSampler:
    """A few refused messages per minute in a JSON-lines file, rotated at ``max_bytes``: enough
    to see what a broken sender sends, never enough to fill the disk."""

    def __init__(self, path: Path | None, per_minute: int, max_bytes: int = 1_000_000) -> None:
        self.path = path
        self.per_minute = per_minute
        self.max_bytes = max_bytes
        self._window = 0
        self._count = 0
        self._lock = threading.Lock()

    def sample(self, reason: str, detail: str, topic: str, payload: bytes | bytearray) -> None:
        if self.path is None or self.per_minute == 0:
            return
        now = time.time()
        with self._lock:
            window = int(now // 60)
            if window != self._window:
                self._window, self._count = window, 0
            if self._count >= self.per_minute:
                return
            self._count += 1
            record = {
                "time": round(now, 3),
                "reason": reason,
                "detail": detail,
                "topic": topic[:300],
                "payload": payload[:1024].decode("utf-8", errors="replace"),
            }
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if self.path.exists() and self.path.stat().st_size > self.max_bytes:
                    self.path.replace(self.path.with_name(self.path.name + ".1"))
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            except OSError as exc:
                _LOGGER.warning("cannot write rejected sample to %s: %s", self.path, exc)


class _StatsCollector(Collector):
    def __init__(self, ingest: Ingest) -> None:
        self.ingest = ingest

    def collect(self) -> Iterator[Metric]:
        s = self.ingest.stats
        p = "learnroom_ingest_"
        yield CounterMetricFamily(p + "messages_received", "MQTT messages received", s.received)
        yield CounterMetricFamily(
            p + "messages_accepted", "messages that passed validation", s.accepted
        )
        rejected = CounterMetricFamily(
            p + "messages_rejected", "messages refused, by reason", labels=["reason"]
        )
        for reason, n in list(s.rejected.items()):
            rejected.add_metric([reason], n)
        yield rejected
        yield CounterMetricFamily(
            p + "points_written", "points stored in InfluxDB", s.points_written
        )
        yield CounterMetricFamily(
            p + "points_refused", "points InfluxDB refused (HTTP 400)", s.points_refused
        )
        yield CounterMetricFamily(
            p + "write_failures", "batches that failed after all retries", s.write_failures
        )
        yield CounterMetricFamily(
            p + "messages_acked", "messages acknowledged to the broker", s.acked
        )
        yield GaugeMetricFamily(
            p + "pending_messages",
            "received, not yet written and acknowledged",
            self.ingest.pending(),
        )
        yield GaugeMetricFamily(p + "mqtt_connected", "1 while connected", int(s.connected))
        yield GaugeMetricFamily(
            p + "writer_up", "0 while InfluxDB is not taking writes", int(s.writer_up)
        )
        missing = GaugeMetricFamily(
            p + "seq_missing", "seq numbers not (yet) received", labels=["site", "room"]
        )
        lost = CounterMetricFamily(
            p + "seq_lost", "seq numbers never received", labels=["site", "room"]
        )
        dups = CounterMetricFamily(
            p + "seq_duplicates", "seq numbers received twice", labels=["site", "room"]
        )
        for (site, room), gw in list(self.ingest.seqs.gateways.items()):
            missing.add_metric([site, room], gw.missing)
            lost.add_metric([site, room], gw.lost)
            dups.add_metric([site, room], gw.duplicates)
        yield missing
        yield lost
        yield dups


def _chunks(lines: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(lines), size):
        yield lines[start : start + size]


class Ingest:
    def __init__(
        self,
        config: CentralConfig,
        writer: Writer,
        *,
        registry: CollectorRegistry | None = None,
        retry_s: float = 1.0,
        retry_max_s: float = 30.0,
    ) -> None:
        self.config = config
        self.writer = writer
        self.stats = Stats()
        self.seqs = SeqTracker()
        self.retry_s = retry_s
        self.retry_max_s = retry_max_s
        ing = config.ingest
        self.sampler = RejectSampler(ing.rejected_file, ing.rejected_samples_per_minute)
        self.registry = registry or CollectorRegistry()
        self.registry.register(_StatsCollector(self))
        self.batch_lines_hist = Histogram(
            "learnroom_ingest_batch_lines",
            "lines per InfluxDB write",
            buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 50000),
            registry=self.registry,
        )
        self.write_seconds = Histogram(
            "learnroom_ingest_write_seconds",
            "time to write one batch, retries included",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self._cond = threading.Condition()
        self._batch = Batch()
        self._writing = 0
        self._generation = 0
        self._stopping = threading.Event()
        self._closing = False
        self._writer_thread: threading.Thread | None = None
        self._metrics_server: Any = None
        self._prefix = config.mqtt.prefix
        self.client = self._make_client()

    # -- MQTT ------------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        m = self.config.mqtt
        v5 = m.protocol == "5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.config.ingest.client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else False,
            manual_ack=True,
        )
        if m.username:
            client.username_pw_set(m.username, m.password)
        ctx = tls_context(m)
        if ctx is not None:
            client.tls_set_context(ctx)
        client.reconnect_delay_set(int(max(1, m.reconnect_min_s)), int(max(1, m.reconnect_max_s)))
        client.max_inflight_messages_set(20)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason.is_failure:
            _LOGGER.error(
                "broker refused the ingest (%s): check mqtt.username/password and the ACL",
                reason,
            )
            return
        with self._cond:
            # acknowledgements of an earlier connection would name other messages now
            self._generation += 1
        self.stats.connected = True
        topic = subscription(self.config)
        if self.config.mqtt.protocol == "5":
            client.subscribe(topic, options=SubscribeOptions(qos=1))
        else:
            client.subscribe(topic, qos=1)
        _LOGGER.info(
            "ingest connected to %s:%s (session %s), subscribed to %s",
            self.config.mqtt.host,
            self.config.mqtt.effective_port,
            "resumed" if flags.session_present else "new",
            topic,
        )

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        self.stats.connected = False
        if not self._stopping.is_set():
            _LOGGER.warning("ingest lost the broker (%s); reconnecting", reason)

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        if self._closing:
            return  # not acknowledged: the broker sends it again to the next session
        stats = self.stats
        stats.received += 1
        lines: list[str] = []
        try:
            result = check(msg.topic, msg.payload, self._prefix)
            if isinstance(result, Accepted):
                env = result.envelope
                lines = to_lines(env, result.topic.sub)
                stats.accepted += 1
                if env.seq is not None:
                    # a retained copy on subscribe, or the broker redelivering what we did
                    # not acknowledge, is no second send by the gateway
                    replay = bool(msg.retain or msg.dup)
                    self._observe(env.site, env.room, env.seq, retained=replay)
            elif isinstance(result, Rejected):
                stats.rejected[result.reason] += 1
                self.sampler.sample(result.reason, result.detail, msg.topic, msg.payload)
        except Exception as exc:  # a bug must not stop the stream
            stats.rejected["invalid"] += 1
            _LOGGER.exception("unexpected error on %s", msg.topic)
            self.sampler.sample("invalid", f"internal: {exc!r}"[:200], msg.topic, msg.payload)
            lines = []
        with self._cond:
            batch = self._batch
            if not batch.messages:
                batch.started = time.monotonic()
            batch.lines += lines
            batch.messages += 1
            if msg.qos > 0:
                batch.acks.append((self._generation, msg.mid))
            if len(batch.lines) >= self.config.ingest.batch_lines:
                self._cond.notify()

    def _observe(self, site: str, room: str, seq: int, *, retained: bool) -> None:
        obs = self.seqs.observe(site, room, seq, replay=retained)
        if obs.newly_lost:
            self.stats.lost += obs.newly_lost
        if obs.duplicate:
            self.stats.duplicates += 1

    # -- writing ---------------------------------------------------------------------------

    def pending(self) -> int:
        with self._cond:
            return self._batch.messages + self._writing

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
                self._cond.wait(due)

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
        """Write every line of the batch, retrying while the database is away; False only when
        told to stop first (the broker then keeps the messages)."""
        size = self.config.ingest.batch_lines
        for chunk in _chunks(batch.lines, size):
            delay = self.retry_s
            while True:
                started = time.monotonic()
                try:
                    result = self.writer.write(chunk)
                except (WriterUnavailableError, BadRequestError) as exc:
                    self.stats.write_failures += 1
                    if self.stats.writer_up:
                        _LOGGER.error(  # noqa: TRY400 - the reason is enough, no traceback
                            "InfluxDB is not taking writes (%s); holding %d messages "
                            "unacknowledged and retrying",
                            exc,
                            batch.messages,
                        )
                    self.stats.writer_up = False
                    if self._stopping.wait(random.uniform(delay / 2, delay)):
                        return False  # stopping while the database is away: the broker keeps it
                    delay = min(delay * 2, self.retry_max_s)
                    continue
                self.write_seconds.observe(time.monotonic() - started)
                self.batch_lines_hist.observe(len(chunk))
                break
            if not self.stats.writer_up:
                _LOGGER.info("InfluxDB takes writes again")
            self.stats.writer_up = True
            self.stats.batches += 1
            self.stats.points_written += result.written
            for line, reason in result.rejected:
                self.stats.points_refused += 1
                self.sampler.sample("influx_refused", reason[:300], "", line.encode())
        return True

    def _ack(self, batch: Batch) -> None:
        with self._cond:
            generation = self._generation
        acked = 0
        for gen, mid in batch.acks:
            if gen == generation:
                self.client.ack(mid, 1)
                acked += 1
        self.stats.acked += acked

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        ing = self.config.ingest
        if ing.metrics_port:
            from prometheus_client import start_http_server  # noqa: PLC0415

            self._metrics_server, _ = start_http_server(
                ing.metrics_port, ing.metrics_host, registry=self.registry
            )
            _LOGGER.info("metrics on http://%s:%d/metrics", ing.metrics_host, ing.metrics_port)
        m = self.config.mqtt
        props = None
        if m.protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = ing.session_expiry_s
            props.ReceiveMaximum = ing.max_pending
            self.client.connect_async(
                m.host, m.effective_port, m.keepalive_s, clean_start=False, properties=props
            )
        else:
            self.client.connect_async(m.host, m.effective_port, m.keepalive_s)
        self._writer_thread = threading.Thread(
            target=self._writer_loop, name="ingest-writer", daemon=True
        )
        self._writer_thread.start()
        self.client.loop_start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking messages, write and acknowledge what is pending (if the database takes
        it within ``timeout``), then leave; anything unacknowledged the broker sends again."""
        self._closing = True
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._writer_thread is not None:
            self._writer_thread.join(timeout)
        self.client.disconnect()
        self.client.loop_stop()
        self.writer.close()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
            self._metrics_server = None

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is pending: for tests and for a clean hand-over."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pending() == 0:
                return True
            time.sleep(0.05)
        return False
