"""Air quality: CO2, temperature and humidity from the room's I2C sensors.

A chip that is absent, answers nonsense, leaves the physical range or repeats one value for
``stuck_after_s`` gives null fields, ``sensor_ok: false`` and a health fault; it never stops
the agent. A failed chip is started again on the next interval, so a re-plugged one comes
back by itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway import const
from gateway.agent.config import EnvironmentSection, SensorConfig
from gateway.agent.drivers.sensors import Buses, NotReadyError, Reading, Sensor, make_sensor
from gateway.agent.sources.base import Sink
from gateway.clock import Clock
from gateway.errors import SensorError
from gateway.models import EnvironmentData

_LOGGER = logging.getLogger(__name__)

_RANGES = {
    "co2_ppm": const.CO2_RANGE_PPM,
    "temperature_c": const.TEMPERATURE_RANGE_C,
    "humidity_pct": const.HUMIDITY_RANGE_PCT,
}
_UNITS = {"co2_ppm": " ppm", "temperature_c": " °C", "humidity_pct": " %RH"}
#: The SCD4x's own temperature and humidity are a fallback: the chip warms itself (its
#: light source and optics), so a dedicated sensor reads the room better.
_DEDICATED_FIRST = {"sht4x": 0, "sht3x": 0, "bme280": 0, "scd4x": 1}
#: After the warm-up, how often and how long to wait more for a first measurement.
_NOT_READY_TRIES = 3
_NOT_READY_WAIT_S = 1.0


@dataclass
class _Fitted:
    """One configured chip and what the source remembers about it."""

    config: SensorConfig
    sensor: Sensor | None = None
    started: bool = False
    #: per field: the last value and the clock time it was first seen
    same: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.sensor.name if self.sensor else f"{self.config.type}@bus{self.config.bus}"


class EnvironmentSource:
    name = "environment"

    def __init__(
        self, config: EnvironmentSection, interval_s: float, clock: Clock, *, buses: Buses
    ) -> None:
        self.config = config
        self.interval_s = interval_s
        self.clock = clock
        self._buses = buses
        ordered = sorted(config.sensors, key=lambda s: _DEDICATED_FIRST.get(s.type, 1))
        self._fitted = [_Fitted(cfg) for cfg in ordered]
        #: The room's occupied state now (None: not known yet), set by the wiring
        #: (``gateway.agent.build``) when the room has an occupancy source: each reading
        #: carries it, so the central side judges the air while the room was in use.
        self.occupied: Callable[[], bool | None] | None = None

    async def run(self, sink: Sink) -> None:
        if not self._fitted:
            return  # no sensors fitted in this room: nothing to report, not even nulls
        while True:
            data, problems = await self.sample()
            sink.fault(self.name, "; ".join(problems) if problems else None)
            sink.emit(data)
            await self.clock.sleep(self.interval_s)

    async def sample(self) -> tuple[EnvironmentData, list[str]]:
        """One reading of every fitted chip, merged, and what went wrong."""
        values: dict[str, float | None] = dict.fromkeys(_RANGES)
        problems: list[str] = []
        for fitted in self._fitted:
            reading = await self._read(fitted, problems)
            for key in _RANGES:
                value = self._check(fitted, key, getattr(reading, key), problems)
                if values[key] is None and value is not None:
                    values[key] = round(value, 2)
        occupied = self.occupied() if self.occupied is not None else None
        return EnvironmentData(**values, sensor_ok=not problems, occupied=occupied), problems

    async def _read(self, fitted: _Fitted, problems: list[str]) -> Reading:
        """The chip's reading, or an empty one (and a problem) when it failed."""
        try:
            return await self._start_and_read(fitted)
        except (SensorError, OSError, ImportError, ValueError) as exc:
            # SensorError (an OSError) is the chip; plain OSError: the bus cannot be opened;
            # ImportError: its driver package is missing; ValueError: an address it cannot have
            problem = str(exc) if isinstance(exc, SensorError) else f"{fitted.label}: {exc}"
            problems.append(problem)
            _LOGGER.debug("%s", problem)
            fitted.started = False  # start it again next time: it may have been re-plugged
            fitted.same.clear()
            return Reading()

    async def _start_and_read(self, fitted: _Fitted) -> Reading:
        if fitted.sensor is None:
            fitted.sensor = make_sensor(
                fitted.config.type, fitted.config.bus, fitted.config.address, self._buses
            )
        sensor = fitted.sensor
        if not fitted.started:
            await asyncio.to_thread(sensor.start)
            fitted.started = True
            _LOGGER.info("%s started", sensor.name)
            await self.clock.sleep(sensor.warmup_s)
        for _ in range(_NOT_READY_TRIES):
            try:
                return await asyncio.to_thread(sensor.read)
            except NotReadyError:
                await self.clock.sleep(_NOT_READY_WAIT_S)
        raise SensorError(f"{sensor.name}: no measurement since it was started")

    def _check(
        self, fitted: _Fitted, key: str, value: float | None, problems: list[str]
    ) -> float | None:
        """The value if it is physically possible and still moving, else None and a problem."""
        if value is None:
            return None
        label, unit = fitted.label, _UNITS[key]
        good: float | None = value
        low, high = _RANGES[key]
        if not low <= value <= high:
            problems.append(f"{label}: {key} {value:g}{unit} outside {low:g}..{high:g}{unit}")
            good = None
        now = self.clock.monotonic()
        last, since = fitted.same.get(key, (None, now))
        if value != last:
            fitted.same[key] = (value, now)
        elif now - since >= self.config.stuck_after_s:
            problems.append(
                f"{label}: {key} stuck at {value:g}{unit} for {(now - since) / 3600:.1f} h"
                " (hung chip or lost calibration)"
            )
            good = None
        return good
