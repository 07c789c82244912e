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

Supervised, never pretending: a writer error that is not the database's is counted as a
restart and the batch is retried; a loop that ends or overruns its own deadline makes
``run`` return 1, so systemd or compose start a fresh process and the broker redelivers what
was not acknowledged. ``/healthz`` (``health.py``) tells the two apart from legitimate waiting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from prometheus_client import CollectorRegistry, Histogram

from gateway.central.config import CentralConfig, subscription
from gateway.central.ingest.health import LoopHealth, mqtt_health, serve, writer_health
from gateway.central.ingest.metrics import StatsCollector
from gateway.central.ingest.samples import RejectSampler
from gateway.central.ingest.seqs import SeqTracker
from gateway.central.ingest.writing import Batch, BatchWriting
from gateway.central.mapping import to_lines
from gateway.central.validate import REASONS, Accepted, Rejected, UnknownNames, check
from gateway.central.writers import Writer
from gateway.config import tls_context

_LOGGER = logging.getLogger(__name__)


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
    #: writes held because InfluxDB did not take them, by reason (unreachable, refused, internal)
    held: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("unreachable", "refused", "internal"), 0)
    )
    #: loops restarted in place after an error that was not the database's
    restarts: dict[str, int] = field(default_factory=lambda: {"writer": 0})


class Ingest(BatchWriting):
    stats: Stats  # the writer half (writing.py) sees only its own counters

    def __init__(
        self,
        config: CentralConfig,
        writer: Writer,
        *,
        registry: CollectorRegistry | None = None,
        retry_s: float = 1.0,
        retry_max_s: float = 30.0,
        grace_s: float = 10.0,
        seq_sink: deque[tuple[str, str, int, bool]] | None = None,
    ) -> None:
        """``seq_sink``: a worker of several (``workers.py``) hands its seqs to the parent,
        which keeps the one tracker: a share group splits every gateway's seqs."""
        self.config = config
        self.writer = writer
        #: slack on every deadline a loop sets itself before it counts as stuck
        self.grace_s = grace_s
        self.stats = Stats()
        self.seqs = SeqTracker()
        self.seq_sink = seq_sink
        self.outage_hook = None
        self.unknown = UnknownNames()
        self.retry_s = retry_s
        self.retry_max_s = retry_max_s
        ing = config.ingest
        self.sampler = RejectSampler(ing.rejected_file, ing.rejected_samples_per_minute)
        self.registry = registry or CollectorRegistry()
        self.registry.register(StatsCollector(self))
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
        #: what the writer loop is doing and until when it may (monotonic); see writer_health
        self._writer_state = "starting"
        self._writer_detail = ""
        self._writer_deadline: float | None = None
        self._held_since: float | None = None
        self._write_started = 0.0
        self._callback_since: float | None = None
        self._broker_refused = ""
        self._last_message = 0.0
        self._mqtt_started = False
        self._metrics_server: Any = None
        self._prefix = config.mqtt.prefix
        self._window = config.accept.window()
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
        client.on_message = self._on_message_watched
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
            self._broker_refused = str(reason)
            return
        self._broker_refused = ""
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

    def _on_message_watched(
        self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage
    ) -> None:
        """``_on_message`` with the time it started, so a callback that hangs is seen."""
        self._callback_since = self._last_message = time.monotonic()
        self._on_message(client, userdata, msg)
        self._callback_since = None

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        if self._closing:
            return  # not acknowledged: the broker sends it again to the next session
        stats = self.stats
        stats.received += 1
        lines: list[str] = []
        try:
            result = check(msg.topic, msg.payload, self._prefix, window=self._window)
            self.unknown.count(result)
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
        if self.seq_sink is not None:
            self.seq_sink.append((site, room, seq, retained))
            return
        obs = self.seqs.observe(site, room, seq, replay=retained)
        if obs.newly_lost:
            self.stats.lost += obs.newly_lost
        if obs.duplicate:
            self.stats.duplicates += 1

    # -- writing ---------------------------------------------------------------------------

    def pending(self) -> int:
        with self._cond:
            return self._batch.messages + self._writing

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        ing = self.config.ingest
        if ing.metrics_port:
            self._metrics_server = serve(
                ing.metrics_host,
                ing.metrics_port,
                self.registry,
                self.health,
                name="ingest-metrics",
            )
            _LOGGER.info(
                "metrics on http://%s:%d/metrics, health on /healthz",
                ing.metrics_host,
                ing.metrics_port,
            )
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
            target=self._writer_main, name="ingest-writer", daemon=True
        )
        self._writer_thread.start()
        self.client.loop_start()
        self._mqtt_started = True

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

    def run(self, stop: threading.Event, check_s: float = 1.0) -> int:
        """Start, then serve until ``stop`` is set (0) or a loop is dead or stuck (1): a process
        that cannot do its work exits, so systemd or compose start a fresh one."""
        self.start()
        code = 0
        while not stop.wait(check_s):
            fatal = [h for h in self.health() if h.fatal]
            if fatal:
                for h in fatal:
                    _LOGGER.critical(
                        "the %s loop is %s (%s): exiting so that the ingest is started again; "
                        "the broker keeps what was not acknowledged",
                        h.loop,
                        h.state,
                        h.detail,
                    )
                code = 1
                break
        if code == 0:
            _LOGGER.info("stopping: writing what is pending")
        self.stop(timeout=30.0 if code == 0 else 5.0)
        return code

    def health(self) -> list[LoopHealth]:
        return [self.mqtt_health(), self.writer_health()]

    def mqtt_health(self) -> LoopHealth:
        # paho keeps its network thread private; it sets it to None when loop_forever ends
        thread = self.client._thread
        return mqtt_health(
            dead=self._mqtt_started and not self._stopping.is_set() and thread is None,
            callback_since=self._callback_since,
            refused=self._broker_refused,
            connected=self.stats.connected,
            last_message=self._last_message,
            grace_s=self.grace_s,
        )

    def writer_health(self) -> LoopHealth:
        thread = self._writer_thread
        deadline = self._writer_deadline
        if deadline is None:  # in a write: the writer's own deadline for its attempt
            deadline = getattr(self.writer, "deadline", None) or self._write_started + 600
        return writer_health(
            dead=thread is not None and not thread.is_alive() and not self._stopping.is_set(),
            state=self._writer_state,
            detail=self._writer_detail,
            deadline=deadline,
            grace_s=self.grace_s,
        )

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is pending: for tests and for a clean hand-over."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pending() == 0:
                return True
            time.sleep(0.05)
        return False
