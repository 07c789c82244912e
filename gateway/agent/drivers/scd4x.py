"""Sensirion SCD40/SCD41 (photoacoustic CO2, plus temperature and humidity) in periodic mode."""

from __future__ import annotations

import logging
from typing import Any

from sensirion_i2c_scd4x import Scd4xDevice

from gateway.agent.drivers.base import NotReadyError, Reading, sensirion_channel, wrap

_LOGGER = logging.getLogger(__name__)


class Scd4x:
    default_address = 0x62
    #: Periodic mode gives a measurement every 5 s, the first 5 s after the start (datasheet
    #: 3.5.1).
    warmup_s = 5.0

    def __init__(self, transceiver: Any, address: int = default_address) -> None:  # noqa: ANN401
        self.name = f"scd4x@0x{address:02x}"
        self._device = Scd4xDevice(sensirion_channel(transceiver, address))
        self._last: Reading | None = None

    def start(self) -> None:
        """Start periodic measurement, or find it already running.

        While measuring, the chip NACKs every command but a few, start included; that is the
        case after a gateway restart. Rather than stopping it first (the vendor's stop sleeps
        500 ms, and the chip would then need another 5 s), a refused start is checked with
        ``get_data_ready_status``, which the chip answers in either mode.
        """
        self._last = None
        try:
            self._device.start_periodic_measurement()
        except OSError as refused:
            try:
                self._device.get_data_ready_status()
            except OSError as exc:
                raise wrap(self.name, exc) from exc
            _LOGGER.debug("%s refused start (%s): already measuring", self.name, refused)

    def read(self) -> Reading:
        try:
            ready = self._device.get_data_ready_status()
            if ready:
                co2, temperature, humidity = self._device.read_measurement()
        except OSError as exc:
            raise wrap(self.name, exc) from exc
        if not ready:
            if self._last is None:
                raise NotReadyError(f"{self.name}: no measurement yet")
            return self._last  # asked again within the 5 s period: the value still holds
        self._last = Reading(float(co2.value), temperature.value, humidity.value)
        return self._last
