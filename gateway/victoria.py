"""VictoriaMetrics as a child process: the tests' InfluxDB 2.x write API (Debian's package).

No InfluxDB 2.x is packaged for Debian; VictoriaMetrics accepts the same ``/api/v2/write``
that ``influxdb-client`` sends, names each field ``<measurement>_<field>`` and keeps numbers
only (booleans become 1/0, a string that is not a number becomes 0).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from gateway.broker import free_port
from gateway.errors import LearnroomError

#: Freshly written series become searchable about a second after the write, flush or not.
_VISIBLE_WITHIN_S = 10.0


class VictoriaMetricsError(LearnroomError, RuntimeError):
    pass


class VictoriaMetrics:
    """``victoria-metrics`` on a loopback port with its data and log in ``workdir``."""

    def __init__(
        self, workdir: Path, port: int | None = None, *, flags: Sequence[str] = ()
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.flags = tuple(flags)  # e.g. -httpAuth.username=... for a server that says 401
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "victoria-metrics.log"

    def log_tail(self, chars: int = 2000) -> str:
        """The end of its log: where it says why it did not start, or which lines it skipped."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    def start(self, timeout: float = 30.0) -> None:
        binary = shutil.which("victoria-metrics")
        if binary is None:
            raise VictoriaMetricsError(
                "victoria-metrics is not installed (apt-get install victoria-metrics)"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
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
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log)  # noqa: S603 - our flags
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1):  # noqa: S310
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise VictoriaMetricsError(
                        f"victoria-metrics did not start on port {self.port}: {self.log_tail()}"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

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
