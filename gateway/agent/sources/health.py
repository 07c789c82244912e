"""Gateway health: is the Pi itself well (CPU, memory, temperature, SD card, outbox)?"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import psutil

from gateway.agent.sources.base import Sink
from gateway.clock import Clock
from gateway.models import HealthData

_LOGGER = logging.getLogger(__name__)

#: Where Linux (and Raspberry Pi OS) exposes the SoC temperature in millidegrees.
CPU_TEMP_FILE = Path("/sys/class/thermal/thermal_zone0/temp")


class HealthSource:
    """Reports every interval; outbox figures and faults come from the agent via callables."""

    name = "health"

    def __init__(
        self,
        interval_s: float,
        clock: Clock,
        *,
        outbox_stats: Callable[[], tuple[int, int]],
        faults: Callable[[], list[str]],
        disk_path: Path,
        cpu_temp_file: Path = CPU_TEMP_FILE,
    ) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self._outbox_stats = outbox_stats
        self._faults = faults
        self._disk_path = disk_path
        self._cpu_temp_file = cpu_temp_file
        self._process = psutil.Process()
        self._started = clock.monotonic()

    def sample(self) -> HealthData:
        depth, dropped = self._outbox_stats()
        with self._process.oneshot():
            cpu = self._process.cpu_percent(interval=None)
            rss = self._process.memory_info().rss / 1e6
        return HealthData(
            uptime_s=round(self.clock.monotonic() - self._started, 1),
            cpu_pct=round(cpu, 1),
            mem_rss_mb=round(rss, 1),
            cpu_temp_c=self._cpu_temp(),
            disk_free_mb=self._disk_free(),
            outbox_depth=depth,
            outbox_dropped=dropped,
            faults=sorted(self._faults()),
        )

    def _cpu_temp(self) -> float | None:
        try:
            return round(int(self._cpu_temp_file.read_text().strip()) / 1000.0, 1)
        except (OSError, ValueError):
            return None  # not every machine has a thermal zone; null says "not fitted"

    def _disk_free(self) -> float | None:
        try:
            return round(shutil.disk_usage(self._disk_path).free / 1e6, 1)
        except OSError:
            return None

    async def run(self, sink: Sink) -> None:
        self._process.cpu_percent(interval=None)  # prime: the first call always says 0.0
        while True:
            await self.clock.sleep(self.interval_s)
            sink.emit(self.sample())
