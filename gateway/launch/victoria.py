"""VictoriaMetrics as a child process: the tests' InfluxDB 2.x write API (Debian's package).

No InfluxDB 2.x is packaged for Debian; VictoriaMetrics accepts the same ``/api/v2/write``
that ``influxdb-client`` sends, names each field ``<measurement>_<field>`` and keeps numbers
only (booleans become 1/0, a string that is not a number becomes 0).
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from gateway.launch.procs import HttpService, ServiceError

#: Freshly written series become searchable about a second after the write, flush or not.
_VISIBLE_WITHIN_S = 10.0


class VictoriaMetricsError(ServiceError):
    pass


class VictoriaMetrics(HttpService):
    """``victoria-metrics`` on a loopback port with its data and log in ``workdir``."""

    binaries = ("victoria-metrics",)
    package = "victoria-metrics"
    ready_path = "/health"
    error = VictoriaMetricsError

    def __init__(
        self, workdir: Path, port: int | None = None, *, flags: Sequence[str] = ()
    ) -> None:
        super().__init__(workdir, port)
        self.flags = tuple(flags)  # e.g. -httpAuth.username=... for a server that says 401

    def command(self, binary: str) -> list[str]:
        return [
            binary,
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.workdir / 'data'}",
            # without these two, new samples stay hidden from queries for 30 s
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-loggerLevel=ERROR",  # quiet, but still says which lines it skipped, and why
            "-retentionPeriod=100y",  # tests may write fixed dates in the past
            *self.flags,
        ]

    def export(
        self, match: str, *, min_samples: int = 0, timeout: float = _VISIBLE_WITHIN_S
    ) -> list[dict[str, Any]]:
        """The series matching ``match`` (a series selector), one dict per series.

        Each dict is ``{"metric": labels, "values": [...], "timestamps": [ms, ...]}`` as
        ``/api/v1/export`` gives it, with a series' blocks merged in time order. Waits until
        at least ``min_samples`` samples are visible (or ``timeout`` passes), because new data
        becomes searchable only after VictoriaMetrics' in-memory buffers are flushed.
        """
        query = urllib.parse.urlencode({"match[]": match})
        deadline = time.monotonic() + timeout
        while True:
            with urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10):  # noqa: S310
                pass
            with urllib.request.urlopen(f"{self.url}/api/v1/export?{query}", timeout=10) as resp:  # noqa: S310
                series = _merge(json.loads(line) for line in resp.read().splitlines() if line)
            seen = sum(len(s["values"]) for s in series)
            if seen >= min_samples or time.monotonic() > deadline:
                return series
            time.sleep(0.05)


def _merge(blocks: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One dict per series: export may give a series in several blocks."""
    by_labels: dict[str, dict[str, Any]] = {}
    for block in blocks:
        key = json.dumps(block["metric"], sort_keys=True)
        series = by_labels.setdefault(
            key, {"metric": block["metric"], "values": [], "timestamps": []}
        )
        series["values"] += block["values"]
        series["timestamps"] += block["timestamps"]
    for series in by_labels.values():
        pairs = sorted(zip(series["timestamps"], series["values"], strict=True))
        series["timestamps"] = [t for t, _ in pairs]
        series["values"] = [v for _, v in pairs]
    return list(by_labels.values())
