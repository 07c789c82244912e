"""A simulated I2C bus whose chips answer like the real ones, so the vendor drivers really run.

Sensirion's drivers reach it through the transceiver API v1 of ``sensirion-i2c-driver``
(command bytes in; status and data words with their CRC-8 out, as on the wire); Pimoroni's
BME280 driver through smbus-style register block reads and writes. The world sets
``AirConditions``; unplugging a chip, freezing it or corrupting its answers are switches there.

Nothing here sleeps: the transceiver ignores the read delays the vendor code asks of it (the
real one sleeps them). The only vendor sleep left is Pimoroni's 0.1 s after a BME280 reset,
once per start. Given a clock, the SCD4x keeps its 5 s measurement period in clock time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sensirion_i2c_driver import CrcCalculator
from sensirion_i2c_driver.transceiver_v1 import I2cTransceiverV1

from gateway.clock import Clock

SCD4X_ADDRESS = 0x62
#: SHT4x (0x44-0x46) and SHT3x (0x44, 0x45) share addresses; the command width tells them
#: apart (one byte for the SHT4x, two for the SHT3x), so either may be configured there.
SHT_ADDRESSES = (0x44, 0x45, 0x46)
BME280_ADDRESSES = (0x76, 0x77)

_CRC = CrcCalculator(8, 0x31, 0xFF, 0x00)
_REMOTE_IO_ERROR = 121  # errno EREMOTEIO: what Linux reports for a NACK


@dataclass
class AirConditions:
    """The air the simulated chips measure, and what is wrong with them (by I2C address)."""

    co2_ppm: float = 450.0
    temperature_c: float = 21.0
    humidity_pct: float = 45.0
    pressure_hpa: float = 1013.25
    #: unplugged: no answer at all; the chip powers up idle when it comes back
    absent: set[int] = field(default_factory=set)
    #: the chip repeats the measurement it had when it got stuck
    stuck: set[int] = field(default_factory=set)
    #: every byte read is corrupted (Sensirion CRCs fail; the BME280 has none to fail)
    garbage: set[int] = field(default_factory=set)


def _nack() -> OSError:
    return OSError(_REMOTE_IO_ERROR, "Remote I/O error")


def _words(*values: int) -> bytes:
    """16-bit words as a Sensirion chip sends them: big-endian, each followed by its CRC."""
    out = bytearray()
    for value in values:
        word = (value & 0xFFFF).to_bytes(2, "big")
        out += word + bytes([_CRC(word)])
    return bytes(out)


def _ticks(value: float, offset: float, span: float) -> int:
    """Sensirion's ``value = -offset + span * ticks / 65535``, inverted and clamped."""
    return max(0, min(0xFFFF, round((value + offset) * 65535 / span)))


class _Chip:
    """Measurement with the stuck switch applied: a stuck chip repeats its last measurement."""

    def __init__(self, air: AirConditions, address: int) -> None:
        self.air = air
        self.address = address
        self._last: tuple[float, float, float, float] | None = None

    def measure(self) -> tuple[float, float, float, float]:
        air = self.air
        if self.address not in air.stuck or self._last is None:
            self._last = (air.co2_ppm, air.temperature_c, air.humidity_pct, air.pressure_hpa)
        return self._last

    def power_off(self) -> None:
        """Unplugged: forget whatever mode the chip was in."""


class _Scd4x(_Chip):
    PERIOD_S = 5.0

    def __init__(self, air: AirConditions, address: int, clock: Clock | None) -> None:
        super().__init__(air, address)
        self.clock = clock
        self.running = False
        self._started = 0.0
        self._taken = 0  # measurements read out since the start

    def power_off(self) -> None:
        self.running = False

    def _available(self) -> int:
        """Measurements made since the start (without a clock: always one more)."""
        if self.clock is None:
            return self._taken + 1
        return math.floor((self.clock.monotonic() - self._started) / self.PERIOD_S)

    def command(self, cmd: int) -> Callable[[], bytes] | None:
        if cmd == 0x21B1 and not self.running:  # start_periodic_measurement
            self.running = True
            self._started = self.clock.monotonic() if self.clock else 0.0
            self._taken = 0
            return lambda: b""
        if cmd == 0x3F86:  # stop_periodic_measurement: accepted in either mode
            self.running = False
            return lambda: b""
        if cmd == 0xE4B8:  # get_data_ready_status: low 11 bits non-zero when ready
            return lambda: _words(0x8006 if self._ready() else 0x8000)
        if cmd == 0xEC05 and self._ready():  # read_measurement; NACK while nothing new
            return self._read_measurement
        return None  # anything else (start while running, above all) is not acknowledged

    def _ready(self) -> bool:
        return self.running and self._available() > self._taken

    def _read_measurement(self) -> bytes:
        self._taken = self._available()
        co2, temperature, humidity, _ = self.measure()
        co2_word = max(0, min(0xFFFF, round(co2)))
        return _words(co2_word, _ticks(temperature, 45, 175), _ticks(humidity, 0, 100))


class _Sht(_Chip):
    """SHT4x or SHT3x, whichever the driver speaks to."""

    def command(self, cmd: int, width: int) -> Callable[[], bytes] | None:
        if width == 1 and cmd in (0xFD, 0xF6, 0xE0):  # SHT4x single shot, any precision
            return self._sht4x
        if width == 2 and cmd in (0x2400, 0x240B, 0x2416):  # SHT3x single shot, no stretching
            return self._sht3x
        if (width, cmd) in ((1, 0x94), (2, 0x30A2)):  # soft reset
            return lambda: b""
        return None

    def _sht4x(self) -> bytes:
        _, temperature, humidity, _ = self.measure()
        return _words(_ticks(temperature, 45, 175), _ticks(humidity, 6, 125))

    def _sht3x(self) -> bytes:
        _, temperature, humidity, _ = self.measure()
        return _words(_ticks(temperature, 45, 175), _ticks(humidity, 0, 100))


class SimTransceiver(I2cTransceiverV1):  # type: ignore[misc]
    """The bus as Sensirion's drivers see it."""

    def __init__(self, bus: SimBus) -> None:
        super().__init__()
        self._bus = bus

    @property
    def description(self) -> str:
        return "learnroom simulated I2C bus"

    @property
    def channel_count(self) -> None:
        return None  # a single-channel transceiver

    def transceive(
        self,
        slave_address: int,
        tx_data: bytes | None,
        rx_length: int | None,
        read_delay: float,
        timeout: float,
    ) -> tuple[int, Exception | None, bytes]:
        """One write (the command) and one read (the answer); the read delay is not slept."""
        reply = self._bus.sensirion(slave_address, bytes(tx_data or b""))
        if reply is None:
            return self.STATUS_NACK, _nack(), b""
        if not rx_length:
            return self.STATUS_OK, None, b""
        data = reply()
        if slave_address in self._bus.air.garbage:
            data = bytes(b ^ 0x5A for b in data)
        return self.STATUS_OK, None, data[:rx_length]


class SimSMBus:
    """The bus as smbus2 users (Pimoroni's BME280 driver) see it: register block access."""

    def __init__(self, bus: SimBus) -> None:
        self._bus = bus

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        data = self._bus.bme280(i2c_addr).read(register, length)
        if i2c_addr in self._bus.air.garbage:
            data = [b ^ 0x5A for b in data]
        return data

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int]) -> None:
        self._bus.bme280(i2c_addr).write(register, data)

    def close(self) -> None:
        """Nothing to release."""


class SimBus:
    """The chips on one simulated bus; both views above reach the same chips."""

    def __init__(self, air: AirConditions, clock: Clock | None) -> None:
        self.air = air
        self._scd4x = _Scd4x(air, SCD4X_ADDRESS, clock)
        self._sht = {a: _Sht(air, a) for a in SHT_ADDRESSES}
        self._bme280 = {a: _Bme280(air, a) for a in BME280_ADDRESSES}
        self._chips: dict[int, _Chip] = {SCD4X_ADDRESS: self._scd4x, **self._sht, **self._bme280}

    def _present(self, address: int) -> bool:
        chip = self._chips.get(address)
        if chip is None:
            return False
        if address in self.air.absent:
            chip.power_off()
            return False
        return True

    def sensirion(self, address: int, tx: bytes) -> Callable[[], bytes] | None:
        """What the chip will answer to this command, or None for a NACK."""
        if not self._present(address) or not tx:
            return None
        if address == SCD4X_ADDRESS:
            return self._scd4x.command(int.from_bytes(tx[:2], "big"))
        if address in self._sht:
            width = 1 if len(tx) == 1 else 2
            return self._sht[address].command(int.from_bytes(tx[:width], "big"), width)
        return None

    def bme280(self, address: int) -> _Bme280:
        if not self._present(address) or address not in self._bme280:
            raise _nack()
        return self._bme280[address]


class SimBuses:
    """The ``Buses`` seam in simulation: one simulated bus per bus number, same air.

    Give it the simulation's clock to keep the SCD4x's 5 s measurement period in clock time;
    without one, every read finds a fresh measurement.
    """

    def __init__(self, air: AirConditions, clock: Clock | None = None) -> None:
        self.air = air
        self.clock = clock
        self._buses: dict[int, SimBus] = {}

    def bus(self, number: int) -> SimBus:
        if number not in self._buses:
            self._buses[number] = SimBus(self.air, self.clock)
        return self._buses[number]

    def transceiver(self, bus: int) -> SimTransceiver:
        return SimTransceiver(self.bus(bus))

    def smbus(self, bus: int) -> SimSMBus:
        return SimSMBus(self.bus(bus))


# -- BME280 -----------------------------------------------------------------------------------
# Trimming parameters: the temperature and pressure ones are the worked example of Bosch's
# BMP280 datasheet (3.12); the humidity ones are typical of a BME280 (all positive, which
# keeps Pimoroni's dig_H4/dig_H5 sign handling out of play).
_DIG_T = (27504, 26435, -1000)
_DIG_P = (36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
_DIG_H1, _DIG_H2, _DIG_H3, _DIG_H4, _DIG_H5, _DIG_H6 = 75, 362, 0, 313, 50, 30


def _calibration_registers() -> dict[int, int]:
    """The trimming parameters laid out in NVM as the datasheet's table 16 has them."""
    regs: dict[int, int] = {}
    words = [(_DIG_T[0], False), (_DIG_T[1], True), (_DIG_T[2], True)]
    words += [(_DIG_P[0], False)] + [(p, True) for p in _DIG_P[1:]]
    for i, (value, signed) in enumerate(words):
        low, high = value.to_bytes(2, "little", signed=signed)
        regs[0x88 + 2 * i], regs[0x89 + 2 * i] = low, high
    regs[0xA1] = _DIG_H1
    regs[0xE1], regs[0xE2] = _DIG_H2.to_bytes(2, "little", signed=True)
    regs[0xE3] = _DIG_H3
    regs[0xE4] = _DIG_H4 >> 4
    regs[0xE5] = (_DIG_H4 & 0x0F) | ((_DIG_H5 & 0x0F) << 4)
    regs[0xE6] = _DIG_H5 >> 4
    regs[0xE7] = _DIG_H6 & 0xFF
    return regs


def _t_fine(adc_t: int) -> float:
    """Datasheet 8.1, floating point: the fine temperature the other formulas use."""
    t1, t2, t3 = _DIG_T
    var1 = (adc_t / 16384.0 - t1 / 1024.0) * t2
    var2 = (adc_t / 131072.0 - t1 / 8192.0) ** 2 * t3
    return var1 + var2


def _pressure_pa(adc_p: int, t_fine: float) -> float:
    p1, p2, p3, p4, p5, p6, p7, p8, p9 = _DIG_P
    var1 = t_fine / 2.0 - 64000.0
    var2 = var1 * var1 * p6 / 32768.0 + var1 * p5 * 2.0
    var2 = var2 / 4.0 + p4 * 65536.0
    var1 = (p3 * var1 * var1 / 524288.0 + p2 * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * p1
    p = (1048576.0 - adc_p - var2 / 4096.0) * 6250.0 / var1
    return p + (p9 * p * p / 2147483648.0 + p * p8 / 32768.0 + p7) / 16.0


def _humidity_pct(adc_h: int, t_fine: float) -> float:
    h = t_fine - 76800.0
    h = (adc_h - (_DIG_H4 * 64.0 + _DIG_H5 / 16384.0 * h)) * (
        _DIG_H2 / 65536.0 * (1.0 + _DIG_H6 / 67108864.0 * h * (1.0 + _DIG_H3 / 67108864.0 * h))
    )
    return h * (1.0 - _DIG_H1 * h / 524288.0)


def _invert(forward: Callable[[int], float], target: float, bits: int) -> int:
    """The raw ADC value whose compensated value is nearest ``target`` (monotonic forward)."""
    low, high = 0, (1 << bits) - 1
    rising = forward(high) > forward(low)
    while high - low > 1:
        mid = (low + high) // 2
        if (forward(mid) < target) == rising:
            low = mid
        else:
            high = mid
    return min((low, high), key=lambda raw: abs(forward(raw) - target))


class _Bme280(_Chip):
    CHIP_ID = 0x60
    _CONTROL = (0xF2, 0xF4, 0xF5)

    def __init__(self, air: AirConditions, address: int) -> None:
        super().__init__(air, address)
        self.regs = bytearray(256)
        for register, value in _calibration_registers().items():
            self.regs[register] = value
        self.regs[0xD0] = self.CHIP_ID
        self._skipped_data()

    def power_off(self) -> None:
        for register in self._CONTROL:
            self.regs[register] = 0
        self._skipped_data()

    def _skipped_data(self) -> None:
        """The data registers after reset: what a skipped measurement reads."""
        self.regs[0xF7:0xFF] = bytes([0x80, 0, 0, 0x80, 0, 0, 0x80, 0])

    def read(self, register: int, length: int) -> list[int]:
        return list(self.regs[register : register + length])

    def write(self, register: int, data: Sequence[int]) -> None:
        for offset, value in enumerate(data):
            self._write(register + offset, value & 0xFF)

    def _write(self, register: int, value: int) -> None:
        if register == 0xE0:  # reset, with the one magic value
            if value == 0xB6:
                self.power_off()
            return
        if register not in self._CONTROL:
            return  # read-only
        self.regs[register] = value
        if register == 0xF4 and value & 0b11 in (0b01, 0b10):  # forced mode: measure once
            self._convert()
            self.regs[0xF4] = value & ~0b11  # back to sleep; status "measuring" is never set

    def _convert(self) -> None:
        _, temperature, humidity, pressure = self.measure()
        ctrl_hum, ctrl_meas = self.regs[0xF2], self.regs[0xF4]
        osrs_h, osrs_t, osrs_p = ctrl_hum & 0b111, ctrl_meas >> 5, (ctrl_meas >> 2) & 0b111
        adc_t = _invert(lambda raw: _t_fine(raw) / 5120.0, temperature, 20)
        t_fine = _t_fine(adc_t)
        adc_p = _invert(lambda raw: _pressure_pa(raw, t_fine), pressure * 100, 20)
        adc_h = _invert(lambda raw: _humidity_pct(raw, t_fine), humidity, 16)
        if not osrs_t:
            adc_t = 0x80000
        if not osrs_p:
            adc_p = 0x80000
        if not osrs_h:
            adc_h = 0x8000
        self.regs[0xF7:0xFA] = (adc_p << 4).to_bytes(3, "big")
        self.regs[0xFA:0xFD] = (adc_t << 4).to_bytes(3, "big")
        self.regs[0xFD:0xFF] = adc_h.to_bytes(2, "big")
