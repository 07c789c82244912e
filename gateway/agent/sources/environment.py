"""Air quality: CO2, temperature, humidity from the fitted I2C sensors.

A sensor that is absent, answers nonsense, leaves the physical range or repeats one value for
hours gives null fields, ``sensor_ok: false`` and a health fault; it never stops the agent,
and it is tried again every interval, so a re-plugged sensor comes back by itself.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from gateway import const
from gateway.agent.drivers.sensors import Buses, Sample, Sensor, make_sensor
from gateway.agent.sources.base import Sink
from gateway.clock import Clock
from gateway.config import EnvironmentSection
from gateway.errors import SensorError
from gateway.models import EnvironmentData

_LOGGER = logging.getLogger(__name__)

_RANGES = {
    "co2_ppm": const.CO2_RANGE_PPM,
    "temperature_c": const.TEMPERATURE_RANGE_C,
    "humidity_pct": const.HUMIDITY_RANGE_PCT,
}


@dataclass
class _Fitted:
    sensor: Sensor | None
    kind: str
    started: bool = False
    last: Sample | None = None
    same_since: float = 0.0
    problems: list[str] = field(default_factory=list)


class EnvironmentSource:
    name = "environment"

    def __init__(
        self, config: EnvironmentSection, interval_s: float, clock: Clock, *, buses: Buses
    ) -> None:
        self.config = config
        self.interval_s = interval_s
        self.clock = clock
        self._buses = buses
        self._fitted: list[_Fitted] = []

    def _build(self) -> None:
        for cfg in self.config.sensors:
            try:
                sensor: Sensor | None = make_sensor(cfg.type, cfg.bus, cfg.address, self._buses)
            except (OSError, ImportError) as exc:  # bus missing: keep trying each interval
                _LOGGER.warning("cannot open %s on bus %d: %s", cfg.type, cfg.bus, exc)
                sensor = None
            self._fitted.append(_Fitted(sensor, cfg.type))

    async def sample(self) -> tuple[EnvironmentData, list[str]]:
        """One reading of every fitted sensor, and what went wrong."""
        if not self._fitted:
            self._build()
        values: dict[str, float | None] = dict.fromkeys(_RANGES)
        # temperature and humidity: the dedicated sensors beat the SCD4x's own (it sits
        # next to its heated optics and reads warm), so they are merged last
        order = sorted(self._fitted, key=lambda f: f.kind != "scd4x")
        problems: list[str] = []
        for fitted in order:
            sample = await self._read(fitted)
            problems += fitted.problems
            if sample is None:
                continue
            for key in _RANGES:
                value = getattr(sample, key)
                if value is not None:
                    values[key] = value
        return EnvironmentData(**values, sensor_ok=not problems), problems

    async def _read(self, fitted: _Fitted) -> Sample | None:
        fitted.problems = []
        if fitted.sensor is None:
            fitted.problems.append(f"{fitted.kind}: bus not available")
            return None
        try:
            if not fitted.started:
                await asyncio.to_thread(fitted.sensor.start)
                fitted.started = True
            sample = await asyncio.to_thread(fitted.sensor.read)
        except SensorError as exc:
            fitted.started = False  # restart it next time: it may have been re-plugged
            fitted.problems.append(str(exc))
            return None
        now = self.clock.monotonic()
        if sample != fitted.last:
            fitted.last, fitted.same_since = sample, now
        elif now - fitted.same_since >= self.config.stuck_after_s:
            fitted.problems.append(
                f"{fitted.sensor.name}: stuck, the same reading for "
                f"{(now - fitted.same_since) / 3600:.1f} h (calibration suspect)"
            )
            return None
        clean = {}
        for key, (low, high) in _RANGES.items():
            value = getattr(sample, key)
            if value is not None and not low <= value <= high:
                fitted.problems.append(f"{fitted.sensor.name}: {key}={value} outside {low}..{high}")
                value = None
            clean[key] = value
        return Sample(**clean)

    async def run(self, sink: Sink) -> None:
        if not self.config.sensors:
            return  # no sensors fitted in this room: nothing to report
        while True:
            data, problems = await self.sample()
            sink.fault(self.name, "; ".join(problems) if problems else None)
            sink.emit(data)
            await self.clock.sleep(self.interval_s)
