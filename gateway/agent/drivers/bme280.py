"""Bosch BME280 (temperature, humidity, pressure) through Pimoroni's driver, in forced mode."""

from __future__ import annotations

from typing import Any

from bme280 import BME280

from gateway.agent.drivers.base import Reading, wrap
from gateway.errors import SensorError


class Bme280:
    default_address = 0x76  # 0x77 with SDO pulled high
    warmup_s = 0.0  # forced mode: each read triggers a conversion and waits for it

    def __init__(self, smbus: Any, address: int = default_address) -> None:  # noqa: ANN401
        if address not in (0x76, 0x77):
            raise ValueError(f"a BME280 answers at 0x76 or 0x77, not 0x{address:02x}")
        self.name = f"bme280@0x{address:02x}"
        self._smbus = smbus
        self._address = address
        self._device: BME280 | None = None

    def start(self) -> None:
        """Check the chip id, reset the chip and load its calibration.

        A fresh driver object each time: Pimoroni's ``setup`` marks itself done before it
        talks to the chip, so after a failed attempt it would never try again.
        """
        self._device = None
        device = BME280(i2c_addr=self._address, i2c_dev=self._smbus)
        try:
            device.setup(mode="forced")
        except (RuntimeError, OSError) as exc:  # RuntimeError: no BME280 id at that address
            raise wrap(self.name, exc) from exc
        self._device = device

    def read(self) -> Reading:
        if self._device is None:
            raise SensorError(f"{self.name}: not started")
        try:
            self._device.update_sensor()
        except OSError as exc:
            raise wrap(self.name, exc) from exc
        return Reading(None, self._device.temperature, self._device.humidity)
