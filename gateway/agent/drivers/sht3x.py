"""Sensirion SHT30/31/35: single-shot temperature and humidity."""

from __future__ import annotations

from typing import Any

from sensirion_i2c_sht3x import Sht3xDevice
from sensirion_i2c_sht3x.commands import Repeatability

from gateway.agent.drivers.base import Reading, sensirion_channel, wrap


class Sht3x:
    default_address = 0x44  # 0x45 with ADDR pulled high
    warmup_s = 0.0  # each read is a fresh single shot (15.5 ms, the vendor waits for it)

    def __init__(self, transceiver: Any, address: int = default_address) -> None:  # noqa: ANN401
        self.name = f"sht3x@0x{address:02x}"
        self._device = Sht3xDevice(sensirion_channel(transceiver, address))

    def start(self) -> None:
        """Single-shot chip: nothing to start; the first read tells whether it answers."""

    def read(self) -> Reading:
        try:
            # without clock stretching: not every I2C master (the Pi's among them) handles it
            temperature, humidity = self._device.measure_single_shot(Repeatability.HIGH, False)
        except OSError as exc:
            raise wrap(self.name, exc) from exc
        return Reading(None, temperature.value, humidity.value)
