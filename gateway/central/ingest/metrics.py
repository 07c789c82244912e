"""The ingest's metrics: its counters read when scraped, and several workers' merged into one.

Counters stay plain integers on the hot path (``service.Stats``); ``StatsCollector`` turns them
into Prometheus families only when ``/metrics`` is asked. ``merge`` adds up what several worker
processes expose (``workers.py``), so ``--workers N`` still has one ``/metrics``: counters and
histograms are summed, "is it up" gauges take the minimum (one worker down shows), and the
longest hold wins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.central.ingest.health import LoopHealth
from gateway.central.ingest.seqs import SeqTracker
from gateway.central.validate import UnknownNames


class _Stats(Protocol):
    received: int
    accepted: int
    rejected: dict[str, int]
    points_written: int
    points_refused: int
    write_failures: int
    acked: int
    connected: bool
    writer_up: bool
    held: dict[str, int]
    restarts: dict[str, int]


class Observed(Protocol):
    """What the collector reads of an ``Ingest``."""

    @property
    def stats(self) -> _Stats: ...

    seqs: SeqTracker
    unknown: UnknownNames

    def pending(self) -> int: ...

    def writer_health(self) -> LoopHealth: ...

    def health(self) -> list[LoopHealth]: ...

    def held_seconds(self) -> float: ...


class StatsCollector(Collector):
    """The ingest's plain counters as Prometheus metrics, read when scraped."""

    def __init__(self, ingest: Observed) -> None:
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
            p + "writer_up",
            "0 while InfluxDB is not taking writes or the writer loop is dead or stuck",
            int(s.writer_up and self.ingest.writer_health().ok),
        )
        held = CounterMetricFamily(
            p + "writes_held",
            "write attempts held unacknowledged for retry, by reason",
            labels=["reason"],
        )
        for reason, n in list(s.held.items()):
            held.add_metric([reason], n)
        yield held
        restarts = CounterMetricFamily(
            p + "loop_restarts", "loops restarted after an unexpected error", labels=["loop"]
        )
        for loop, n in list(s.restarts.items()):
            restarts.add_metric([loop], n)
        yield restarts
        up = GaugeMetricFamily(
            p + "loop_up", "1 while the loop makes progress or legitimately waits", labels=["loop"]
        )
        for h in self.ingest.health():
            up.add_metric([h.loop], int(h.ok))
        yield up
        yield GaugeMetricFamily(
            p + "held_seconds",
            "how long the batch being written has been held by InfluxDB not taking it",
            self.ingest.held_seconds(),
        )
        yield from seq_families(self.ingest.seqs)
        unknown = self.ingest.unknown
        fields = CounterMetricFamily(
            p + "unknown_fields",
            "fields a newer sender added: ignored, counted",
            labels=["kind", "field"],
        )
        for (kind, name), n in list(unknown.fields.items()):
            fields.add_metric([kind, name], n)
        yield fields
        kinds = CounterMetricFamily(
            p + "unknown_kinds", "messages of a kind this side does not know", labels=["kind"]
        )
        for kind, n in list(unknown.kinds.items()):
            kinds.add_metric([kind], n)
        yield kinds


def seq_families(seqs: SeqTracker) -> Iterator[Metric]:
    """Loss accounting per gateway; with ``--workers`` the parent keeps the one tracker
    (a share group splits each gateway's seqs between the workers)."""
    p = "learnroom_ingest_"
    missing = GaugeMetricFamily(
        p + "seq_missing", "seq numbers not (yet) received", labels=["site", "room"]
    )
    lost = CounterMetricFamily(
        p + "seq_lost", "seq numbers never received", labels=["site", "room"]
    )
    dups = CounterMetricFamily(
        p + "seq_duplicates", "seq numbers received twice", labels=["site", "room"]
    )
    for (site, room), gw in list(seqs.gateways.items()):
        missing.add_metric([site, room], gw.missing)
        lost.add_metric([site, room], gw.lost)
        dups.add_metric([site, room], gw.duplicates)
    yield missing
    yield lost
    yield dups
    yield CounterMetricFamily(
        p + "seq_jumps", "seq numbers far from all seen: ranges restarted", seqs.jumps
    )
    yield GaugeMetricFamily(p + "seq_gateways", "gateways tracked", len(seqs.gateways))
    yield CounterMetricFamily(
        p + "seq_untracked",
        "messages of gateways beyond the tracking cap",
        seqs.untracked,
    )


#: Gauges whose merge is the minimum (all workers up) or the maximum (the longest hold).
_MIN_SUFFIXES = ("_up", "_connected")
_MAX_NAMES = frozenset({"learnroom_ingest_held_seconds"})


def merge(groups: Iterable[Iterable[Metric]]) -> list[Metric]:
    """One family per name from several processes' families: samples with the same name and
    labels are added up, except "up" gauges (minimum), ``held_seconds`` (maximum) and
    ``_created`` timestamps (the earliest)."""
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for families in groups:
        for family in families:
            out = merged.get(family.name)
            if out is None:
                out = merged[family.name] = Metric(family.name, family.documentation, family.type)
                values[family.name] = {}
            combine = _combiner(family)
            seen = values[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                old = seen.get(key)
                if sample.name.endswith("_created"):
                    seen[key] = sample.value if old is None else min(old, sample.value)
                else:
                    seen[key] = sample.value if old is None else combine(old, sample.value)
    for name, out in merged.items():
        for (sample_name, labels), value in values[name].items():
            out.add_sample(sample_name, dict(labels), value)
    return list(merged.values())


def _combiner(family: Metric) -> Callable[[float, float], float]:
    if family.type == "gauge" and family.name.endswith(_MIN_SUFFIXES):
        return min
    if family.name in _MAX_NAMES:
        return max
    return _add


def _add(a: float, b: float) -> float:
    return a + b
