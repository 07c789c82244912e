"""A simulated I2C bus that answers like Sensirion's chips, so their vendor drivers really run.

It speaks the transceiver API v1 of ``sensirion-i2c-driver``: bytes in, status and bytes out,
CRC-8 after every word as on the wire. The world sets ``AirConditions``; faults are switches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sensirion_i2c_driver.transceiver_v1 import I2cTransceiverV1

from gateway.agent.drivers.sensors import SENSIRION_CRC


@dataclass
class AirConditions:
    co2_ppm: float = 450.0
    temperature_c: float = 21.0
    humidity_pct: float = 45.0
    #: addresses that do not answer (unplugged), answer with bad CRCs, or repeat one value
    absent: set[int] = field(default_factory=set)
    garbage: set[int] = field(default_factory=set)
    stuck: set[int] = field(default_factory=set)


def _words(*values: int) -> bytes:
    out = bytearray()
    for value in values:
        word = bytes([(value >> 8) & 0xFF, value & 0xFF])
        out += word + bytes([SENSIRION_CRC(word)])
    return bytes(out)


def _ticks(value: float, offset: float, span: float) -> int:
    return max(0, min(0xFFFF, round((value + offset) * 65535 / span)))


class SimTransceiver(I2cTransceiverV1):  # type: ignore[misc]
    """SCD4x at 0x62, SHT4x at 0x44, SHT3x at 0x45 on one simulated bus."""

    def __init__(self, air: AirConditions) -> None:
        super().__init__()
        self.air = air
        self.scd_running = False
        self._frozen: dict[tuple[int, int | None], bytes] = {}
        self._pending: dict[int, int] = {}

    @property
    def description(self) -> str:
        return "learnroom simulated I2C bus"

    @property
    def channel_count(self) -> None:
        return None  # single channel

    def transceive(
        self,
        slave_address: int,
        tx_data: bytes | None,
        rx_length: int | None,
        read_delay: float,
        timeout: float,
    ) -> tuple[int, Any, bytes]:
        air = self.air
        if slave_address in air.absent:
            return self.STATUS_NACK, OSError(121, "Remote I/O error"), b""
        if tx_data:
            self._write(slave_address, bytes(tx_data))
        if not rx_length:
            return self.STATUS_OK, None, b""
        cmd = self._pending.get(slave_address)
        data = self._answer(slave_address)
        if data is None:
            return self.STATUS_NACK, OSError(121, "Remote I/O error"), b""
        if slave_address in air.stuck:
            data = self._frozen.setdefault((slave_address, cmd), data)
        if slave_address in air.garbage:
            data = bytes(b ^ 0x5A for b in data)
        return self.STATUS_OK, None, data[:rx_length]

    def _write(self, address: int, tx: bytes) -> None:
        cmd = int.from_bytes(tx[:2], "big") if address in {0x62, 0x45} else tx[0]
        if address == 0x62 and cmd == 0x21B1:
            self.scd_running = True
        elif address == 0x62 and cmd == 0x3F86:
            self.scd_running = False
        self._pending[address] = cmd

    def _answer(self, address: int) -> bytes | None:
        air, cmd = self.air, self._pending.pop(address, None)
        t, rh = air.temperature_c, air.humidity_pct
        if address == 0x62:  # SCD4x
            if cmd == 0xE4B8:  # get_data_ready_status: low 11 bits non-zero = ready
                return _words(0x8006 if self.scd_running else 0x8000)
            if cmd == 0xEC05 and self.scd_running:  # read_measurement
                return _words(round(air.co2_ppm), _ticks(t, 45, 175), _ticks(rh, 0, 100))
            return None
        if address == 0x44 and cmd == 0xFD:  # SHT4x measure, high precision
            return _words(_ticks(t, 45, 175), _ticks(rh, 6, 125))
        if address == 0x45 and cmd == 0x2400:  # SHT3x single shot, high repeatability
            return _words(_ticks(t, 45, 175), _ticks(rh, 0, 100))
        return None


class SimBuses:
    """The ``Buses`` seam in simulation: every bus number is the same simulated bus."""

    def __init__(self, air: AirConditions) -> None:
        self.air = air
        self.bus = SimTransceiver(air)

    def transceiver(self, bus: int) -> SimTransceiver:
        return self.bus

    def smbus(self, bus: int) -> Any:  # noqa: ANN401
        raise NotImplementedError(
            "the BME280 is not simulated; simulate an scd4x/sht4x/sht3x room instead"
        )
