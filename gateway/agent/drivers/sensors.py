"""The factory that picks a driver per configured chip.

Each chip family has its own module, imported only when a room fits that chip, so a missing
driver package hurts only the rooms that need it. The chip modules import ``base``, never
this module, so the factory and its drivers form no circle.
"""

from __future__ import annotations

from gateway.agent.drivers.base import Buses, NotReadyError, Reading, Sensor

__all__ = ["Buses", "NotReadyError", "Reading", "Sensor", "make_sensor"]


def make_sensor(kind: str, bus: int, address: int | None, buses: Buses) -> Sensor:
    """The driver for one configured chip; raises ``OSError`` when the bus cannot be opened
    and ``ImportError`` when the chip's driver package is not installed."""
    if kind == "scd4x":
        from gateway.agent.drivers.scd4x import Scd4x  # noqa: PLC0415

        return Scd4x(buses.transceiver(bus), address or Scd4x.default_address)
    if kind == "sht4x":
        from gateway.agent.drivers.sht4x import Sht4x  # noqa: PLC0415

        return Sht4x(buses.transceiver(bus), address or Sht4x.default_address)
    if kind == "sht3x":
        from gateway.agent.drivers.sht3x import Sht3x  # noqa: PLC0415

        return Sht3x(buses.transceiver(bus), address or Sht3x.default_address)
    if kind == "bme280":
        from gateway.agent.drivers.bme280 import Bme280  # noqa: PLC0415

        return Bme280(buses.smbus(bus), address or Bme280.default_address)
    raise ValueError(f"unknown sensor type {kind!r}")
