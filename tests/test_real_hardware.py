"""On a real Raspberry Pi with sensors fitted: the drivers against the chips themselves.

Skipped everywhere else (as gpiozero's ``test_real_pins.py`` is): CI has no I2C bus. Run on a
Pi with ``scripts/test tests/test_real_hardware.py`` to check a new room's wiring.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway import const
from gateway.agent.drivers.i2c import LinuxBuses
from gateway.agent.drivers.sensors import make_sensor

BUS = Path("/dev/i2c-1")

pytestmark = [
    pytest.mark.hardware,
    pytest.mark.skipif(not BUS.exists(), reason="no I2C bus: not a Raspberry Pi with I2C enabled"),
]


@pytest.mark.parametrize("kind", ["scd4x", "sht4x"])
def test_fitted_sensor_reads_a_plausible_room(kind: str):
    sensor = make_sensor(kind, 1, None, LinuxBuses())
    try:
        sensor.start()
    except OSError as exc:
        pytest.skip(f"no {kind} answers on bus 1: {exc}")
    time.sleep(sensor.warmup_s + 1)  # the SCD4x has its first value after 5 s
    sample = sensor.read()
    assert sample.temperature_c is not None
    assert 5 < sample.temperature_c < 40, "a room, not a fridge or an oven"
    if kind == "scd4x" and sample.co2_ppm is not None:
        low, high = const.CO2_RANGE_PPM
        assert low < sample.co2_ppm < high
