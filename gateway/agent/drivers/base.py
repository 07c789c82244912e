"""What every sensor driver is; the factory that picks one per chip is ``sensors``.

A driver is handed its bus by a ``Buses`` object (real: ``drivers.i2c.LinuxBuses``;
simulated: ``gateway.sim.i2c.SimBuses``) and never opens ``/dev/i2c-*`` itself. Its calls may
block (the vendor code sleeps for conversion times), so the source runs them in a thread.
Each chip family's module imports this one, never the factory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from gateway.errors import SensorError

if TYPE_CHECKING:
    from sensirion_driver_adapters.i2c_adapter.i2c_channel import I2cChannel


class Buses(Protocol):
    """Where drivers get their bus: Sensirion's drivers want a transceiver, Pimoroni's an
    smbus-like object; both views must reach the same wires."""

    def transceiver(self, bus: int) -> Any: ...  # noqa: ANN401 - Sensirion's untyped API

    def smbus(self, bus: int) -> Any: ...  # noqa: ANN401 - smbus2 is untyped


@dataclass(frozen=True)
class Reading:
    """What one chip measured; a chip leaves out what it cannot measure."""

    co2_ppm: float | None = None
    temperature_c: float | None = None
    humidity_pct: float | None = None


class Sensor(Protocol):
    #: ``kind@address``, as faults and logs name the chip.
    name: str
    #: Clock seconds from ``start`` until the first measurement exists.
    warmup_s: float

    def start(self) -> None:
        """Put the chip into measuring; raises ``SensorError`` when it does not answer."""

    def read(self) -> Reading:
        """The newest measurement; raises ``SensorError`` (``NotReadyError`` before the first)."""
        ...


class NotReadyError(SensorError):
    """The chip answers but has no measurement yet: wait, do not restart it."""


def wrap(name: str, exc: Exception) -> SensorError:
    """A vendor error as ours, naming the chip (the vendors' messages do not)."""
    return SensorError(f"{name}: {exc}" if str(exc) else f"{name}: {type(exc).__name__}")


def sensirion_channel(transceiver: Any, address: int) -> I2cChannel:  # noqa: ANN401
    """The channel Sensirion's generated drivers speak through, with their CRC-8 per word."""
    from sensirion_driver_adapters.i2c_adapter.i2c_channel import I2cChannel  # noqa: PLC0415
    from sensirion_i2c_driver import CrcCalculator, I2cConnection  # noqa: PLC0415

    # polynomial 0x31, init 0xFF (every Sensirion datasheet); the vendors' examples use the same
    crc = CrcCalculator(8, 0x31, 0xFF, 0x00)
    return I2cChannel(I2cConnection(transceiver), slave_address=address, crc=crc)
