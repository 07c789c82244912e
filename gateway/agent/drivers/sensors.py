"""One small class per sensor family over the vendor drivers (Sensirion, Pimoroni).

Every driver call may block (the vendor code sleeps for conversion times), so the source
calls ``start`` and ``read`` in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sensirion_driver_adapters.i2c_adapter.i2c_channel import I2cChannel
from sensirion_i2c_driver import CrcCalculator, I2cConnection

from gateway.errors import SensorError

#: Sensirion's CRC-8 over every 16-bit word (polynomial 0x31, init 0xFF), as in the datasheets.
SENSIRION_CRC = CrcCalculator(8, 0x31, 0xFF, 0x00)


class Buses(Protocol):
    """Where drivers get their bus: real (``drivers.i2c.LinuxBuses``) or simulated."""

    def transceiver(self, bus: int) -> Any: ...  # noqa: ANN401

    def smbus(self, bus: int) -> Any: ...  # noqa: ANN401


@dataclass(frozen=True)
class Sample:
    co2_ppm: float | None = None
    temperature_c: float | None = None
    humidity_pct: float | None = None


class Sensor(Protocol):
    name: str

    def start(self) -> None: ...

    def read(self) -> Sample: ...


def _channel(transceiver: Any, address: int) -> I2cChannel:  # noqa: ANN401
    return I2cChannel(I2cConnection(transceiver), slave_address=address, crc=SENSIRION_CRC)


def _wrap(name: str, exc: Exception) -> SensorError:
    return SensorError(f"{name}: {type(exc).__name__}: {exc}".rstrip(": "))


class Scd4x:
    """Sensirion SCD40/SCD41 (photoacoustic CO2) in periodic mode, a value every 5 s."""

    def __init__(self, transceiver: Any, address: int = 0x62) -> None:  # noqa: ANN401
        from sensirion_i2c_scd4x import Scd4xDevice  # noqa: PLC0415

        self.name = f"scd4x@0x{address:02x}"
        self._device = Scd4xDevice(_channel(transceiver, address))
        self._last: Sample | None = None

    def start(self) -> None:
        try:
            # stop first: after a gateway restart the sensor may still be measuring
            self._device.stop_periodic_measurement()
            self._device.start_periodic_measurement()
        except Exception as exc:
            raise _wrap(self.name, exc) from exc

    def read(self) -> Sample:
        try:
            ready = self._device.get_data_ready_status()
            if ready:
                co2, temp, rh = self._device.read_measurement()
        except Exception as exc:
            raise _wrap(self.name, exc) from exc
        if not ready:
            if self._last is None:
                raise SensorError(f"{self.name}: no measurement yet")
            return self._last  # polled faster than the 5 s update: the value still holds
        self._last = Sample(float(co2.value), round(temp.value, 2), round(rh.value, 2))
        return self._last


class Sht4x:
    """Sensirion SHT40/41/45: single-shot temperature and humidity, high precision."""

    def __init__(self, transceiver: Any, address: int = 0x44) -> None:  # noqa: ANN401
        from sensirion_i2c_sht4x import Sht4xDevice  # noqa: PLC0415

        self.name = f"sht4x@0x{address:02x}"
        self._device = Sht4xDevice(_channel(transceiver, address))

    def start(self) -> None:
        """Single-shot sensor: nothing to start."""

    def read(self) -> Sample:
        try:
            temp, rh = self._device.measure_high_precision()
        except Exception as exc:
            raise _wrap(self.name, exc) from exc
        # the datasheet's formula may give -6..+119 %RH: clip as Sensirion recommends
        return Sample(None, round(temp.value, 2), round(min(max(rh.value, 0.0), 100.0), 2))


class Sht3x:
    """Sensirion SHT30/31/35. No maintained Sensirion package covers it on PyPI, so the one
    command we need (single shot, high repeatability, 0x2400) is sent by hand."""

    def __init__(self, transceiver: Any, address: int = 0x44) -> None:  # noqa: ANN401
        from sensirion_i2c_driver import SensirionI2cCommand  # noqa: PLC0415

        class _Measure(SensirionI2cCommand):  # type: ignore[misc]
            def __init__(self) -> None:
                super().__init__(
                    command=0x2400,
                    tx_data=None,
                    rx_length=6,
                    read_delay=0.016,  # 15.5 ms conversion, datasheet table 4
                    timeout=0,
                    crc=SENSIRION_CRC,
                    command_bytes=2,
                )

            def interpret_response(self, data: bytes) -> tuple[float, float]:
                words = SensirionI2cCommand.interpret_response(self, data)
                t_raw = int.from_bytes(words[0:2], "big")
                rh_raw = int.from_bytes(words[2:4], "big")
                return -45 + 175 * t_raw / 65535, 100 * rh_raw / 65535

        self.name = f"sht3x@0x{address:02x}"
        self._command = _Measure
        self._connection = I2cConnection(transceiver)
        self._address = address

    def start(self) -> None:
        """Single-shot sensor: nothing to start."""

    def read(self) -> Sample:
        try:
            temp, rh = self._connection.execute(self._address, self._command())
        except Exception as exc:
            raise _wrap(self.name, exc) from exc
        return Sample(None, round(temp, 2), round(rh, 2))


class Bme280:
    """Bosch BME280 through Pimoroni's driver (temperature, humidity; no CO2)."""

    def __init__(self, smbus: Any, address: int = 0x76) -> None:  # noqa: ANN401
        from bme280 import BME280  # noqa: PLC0415

        self.name = f"bme280@0x{address:02x}"
        self._device = BME280(i2c_addr=address, i2c_dev=smbus)

    def start(self) -> None:
        try:
            self._device.setup(mode="forced")
        except Exception as exc:
            raise _wrap(self.name, exc) from exc

    def read(self) -> Sample:
        try:
            self._device.update_sensor()
            return Sample(None, round(self._device.temperature, 2), round(self._device.humidity, 2))
        except Exception as exc:
            raise _wrap(self.name, exc) from exc


def make_sensor(kind: str, bus: int, address: int | None, buses: Buses) -> Sensor:
    if kind == "scd4x":
        return Scd4x(buses.transceiver(bus), address or 0x62)
    if kind == "sht4x":
        return Sht4x(buses.transceiver(bus), address or 0x44)
    if kind == "sht3x":
        return Sht3x(buses.transceiver(bus), address or 0x44)
    if kind == "bme280":
        return Bme280(buses.smbus(bus), address or 0x76)
    raise ValueError(f"unknown sensor type {kind!r}")
