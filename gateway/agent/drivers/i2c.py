"""Opening real I2C buses; the only module that touches ``/dev/i2c-*``."""

from __future__ import annotations

from typing import Any


class LinuxBuses:
    """Opens each bus once, in the two shapes the vendor drivers want."""

    def __init__(self) -> None:
        self._transceivers: dict[int, Any] = {}
        self._smbus: dict[int, Any] = {}

    def transceiver(self, bus: int) -> Any:  # noqa: ANN401 - Sensirion's untyped transceiver
        """Sensirion's I2C transceiver (API v1) for ``/dev/i2c-<bus>``."""
        if bus not in self._transceivers:
            from sensirion_i2c_driver import LinuxI2cTransceiver  # noqa: PLC0415

            self._transceivers[bus] = LinuxI2cTransceiver(f"/dev/i2c-{bus}")
        return self._transceivers[bus]

    def smbus(self, bus: int) -> Any:  # noqa: ANN401 - smbus2 is untyped
        """An smbus2 bus, for Pimoroni's BME280 driver."""
        if bus not in self._smbus:
            from smbus2 import SMBus  # noqa: PLC0415

            self._smbus[bus] = SMBus(bus)
        return self._smbus[bus]
