"""Sensirion SHT40/41/45: single-shot temperature and humidity."""

from __future__ import annotations

from typing import Any

from sensirion_i2c_sht4x import Sht4xDevice

from gateway.agent.drivers.base import Reading, sensirion_channel, wrap


class Sht4x:
    default_address = 0x44
    warmup_s = 0.0  # each read is a fresh single shot (8.3 ms, the vendor waits for it)

    def __init__(self, transceiver: Any, address: int = default_address) -> None:  # noqa: ANN401
        self.name = f"sht4x@0x{address:02x}"
        self._device = Sht4xDevice(sensirion_channel(transceiver, address))

    def start(self) -> None:
        """Single-shot chip: nothing to start; the first read tells whether it answers."""

    def read(self) -> Reading:
        try:
            temperature, humidity = self._device.measure_high_precision()
        except OSError as exc:
            raise wrap(self.name, exc) from exc
        # the SHT4x formula spans -6..119 %RH; the datasheet (4.6) says to crop to 0..100
        return Reading(None, temperature.value, min(max(humidity.value, 0.0), 100.0))
