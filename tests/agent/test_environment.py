"""The environment source and the vendors' own drivers against the simulated chips."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.agent.config import EnvironmentSection
from gateway.agent.drivers.i2c import LinuxBuses
from gateway.agent.drivers.sensors import make_sensor
from gateway.agent.sources.environment import EnvironmentSource
from gateway.clock import ScaledClock
from gateway.models import EnvironmentData
from gateway.sim.i2c import AirConditions, SimBuses
from tests.sink import Recorder

SCD4X, SHT, BME280 = 0x62, 0x44, 0x76
#: driver packages a room needs only when it fits that chip
PACKAGES = {"sht3x": "sensirion_i2c_sht3x", "bme280": "bme280"}


class ManualClock:
    """Clock time moves only when someone sleeps on it."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> datetime:
        return datetime(2025, 3, 1, 8, tzinfo=UTC) + timedelta(seconds=self.t)

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)


def needs(*kinds: str) -> None:
    for kind in kinds:
        if kind in PACKAGES:
            pytest.importorskip(PACKAGES[kind])


def source(
    air: AirConditions,
    *sensors: str | dict[str, Any],
    clock: Any = None,
    buses: Any = None,
    **cfg: Any,
) -> EnvironmentSource:
    clock = clock or ManualClock()
    fitted = [{"type": s} if isinstance(s, str) else s for s in sensors]
    needs(*(s["type"] for s in fitted))
    return EnvironmentSource(
        EnvironmentSection(sensors=fitted, **cfg),
        30,
        clock,
        buses=buses or SimBuses(air, clock=clock),
    )


# -- the vendor drivers against the simulated chips ---------------------------------------------
@pytest.mark.parametrize(
    ("kind", "address"), [("scd4x", None), ("sht4x", None), ("sht3x", 0x45), ("bme280", 0x77)]
)
@pytest.mark.parametrize(
    "air",
    [
        AirConditions(co2_ppm=1234, temperature_c=23.45, humidity_pct=51.2),
        AirConditions(co2_ppm=420, temperature_c=4.2, humidity_pct=18.0),
        AirConditions(co2_ppm=3800, temperature_c=31.7, humidity_pct=88.5),
    ],
    ids=["classroom", "cold-dry", "stuffy"],
)
def test_vendor_driver_reads_the_simulated_chip(kind: str, address: int | None, air):
    needs(kind)
    sensor = make_sensor(kind, 1, address, SimBuses(air))
    sensor.start()
    reading = sensor.read()
    if kind == "scd4x":
        assert reading.co2_ppm == air.co2_ppm
    else:
        assert reading.co2_ppm is None, "only the SCD4x measures CO2"
    # 16-bit words: 0.003 °C and 0.002 %RH per step; the BME280's 20/16-bit ADCs are finer
    assert reading.temperature_c == pytest.approx(air.temperature_c, abs=0.005)
    assert reading.humidity_pct == pytest.approx(air.humidity_pct, abs=0.005)


# -- merging ------------------------------------------------------------------------------------
async def test_room_with_scd4x_and_sht4x_reports_all_three():
    air = AirConditions(co2_ppm=1234, temperature_c=23.45, humidity_pct=51.2)
    data, problems = await source(air, "scd4x", "sht4x").sample()
    assert problems == []
    assert data == EnvironmentData(co2_ppm=1234, temperature_c=23.45, humidity_pct=51.2)


async def test_dedicated_sensor_wins_and_the_scd4x_stands_in_when_it_fails():
    air = AirConditions(co2_ppm=800, temperature_c=20.0, humidity_pct=40.0)
    clock = ManualClock()
    src = source(air, "scd4x", "sht4x", clock=clock)
    await src.sample()
    air.stuck.add(SHT)  # the SHT4x keeps 20 °C: the two chips now disagree
    air.temperature_c, air.humidity_pct = 25.0, 60.0
    await clock.sleep(30)
    data, _ = await src.sample()
    assert (data.temperature_c, data.humidity_pct) == (20.0, 40.0), "the SHT4x's values"

    air.absent.add(SHT)
    await clock.sleep(30)
    data, problems = await src.sample()
    assert (data.temperature_c, data.humidity_pct) == (25.0, 60.0), "the SCD4x's own"
    assert not data.sensor_ok
    assert "sht4x@0x44" in problems[0]


async def test_scd4x_only_room_uses_its_temperature_and_humidity():
    air = AirConditions(co2_ppm=600, temperature_c=19.0, humidity_pct=30.0)
    data, problems = await source(air, "scd4x").sample()
    assert problems == []
    assert (data.co2_ppm, data.temperature_c, data.humidity_pct) == (600, 19.0, 30.0)


async def test_sht3x_and_bme280_rooms_have_no_co2():
    air = AirConditions(temperature_c=22.5, humidity_pct=35.0)
    for chip in ({"type": "sht3x", "address": 0x45}, "bme280"):
        data, problems = await source(air, chip).sample()
        assert problems == []
        assert (data.co2_ppm, data.temperature_c, data.humidity_pct) == (None, 22.5, 35.0)


async def test_scd4x_first_measurement_is_awaited_in_clock_time():
    air = AirConditions(co2_ppm=950)
    clock = ManualClock()
    data, problems = await source(air, "scd4x", clock=clock).sample()
    assert (data.co2_ppm, problems) == (950, [])
    assert clock.monotonic() >= 5.0, "the chip's first measurement comes 5 s after its start"


async def test_scd4x_still_measuring_from_before_a_restart_is_read_without_a_fault():
    air = AirConditions(co2_ppm=700)
    clock = ManualClock()
    buses = SimBuses(air, clock=clock)
    await source(air, "scd4x", clock=clock, buses=buses).sample()
    # a new agent process on the same chip: it refuses start_periodic_measurement now
    data, problems = await source(air, "scd4x", clock=clock, buses=buses).sample()
    assert (data.co2_ppm, data.sensor_ok, problems) == (700, True, [])


# -- faults -------------------------------------------------------------------------------------
async def test_absent_sensor_gives_nulls_and_a_fault_until_it_is_plugged_back():
    air = AirConditions(co2_ppm=700)
    src = source(air, "scd4x", "sht4x")
    air.absent.add(SCD4X)
    data, problems = await src.sample()
    assert data.co2_ppm is None
    assert data.temperature_c is not None, "the other sensor still reports"
    assert not data.sensor_ok
    assert problems == [problems[0]]
    assert "scd4x@0x62" in problems[0]
    assert "NACK" in problems[0]
    air.absent.clear()  # plugged back: the chip powers up idle and must be started again
    data, problems = await src.sample()
    assert (data.co2_ppm, data.sensor_ok, problems) == (700, True, [])


async def test_replugged_bme280_comes_back():
    air = AirConditions(temperature_c=18.0, humidity_pct=55.0)
    air.absent.add(BME280)
    src = source(air, "bme280")
    data, problems = await src.sample()
    assert (data.temperature_c, data.sensor_ok) == (None, False)
    assert "bme280@0x76" in problems[0]
    air.absent.clear()
    data, problems = await src.sample()
    assert (data.temperature_c, data.humidity_pct, problems) == (18.0, 55.0, [])


async def test_bad_crc_is_a_fault_not_a_value():
    air = AirConditions()
    src = source(air, "sht4x")
    air.garbage.add(SHT)
    data, problems = await src.sample()
    assert (data.temperature_c, data.humidity_pct, data.sensor_ok) == (None, None, False)
    assert "checksum" in problems[0]
    air.garbage.clear()
    data, problems = await src.sample()
    assert (data.temperature_c, problems) == (21.0, [])


async def test_missing_i2c_bus_is_a_fault_not_a_crash():
    src = source(AirConditions(), {"type": "sht4x", "bus": 250}, buses=LinuxBuses())
    data, problems = await src.sample()
    assert (data.temperature_c, data.sensor_ok) == (None, False)
    assert "i2c-250" in problems[0]


@pytest.mark.parametrize(
    ("change", "field", "chip"),
    [
        ({"co2_ppm": 50000}, "co2_ppm", "scd4x"),  # the SCD4x's word holds it; 0-40000 is real
        ({"temperature_c": 128.0}, "temperature_c", "sht4x"),  # the SHT4x spans -45..130 °C
    ],
)
async def test_out_of_range_value_is_dropped_with_a_fault(change, field, chip):
    air = AirConditions(**change)
    data, problems = await source(air, chip).sample()
    assert getattr(data, field) is None
    assert not data.sensor_ok
    assert f"{field} " in problems[0]
    assert "outside" in problems[0]


async def test_stuck_sensor_is_reported_after_the_configured_clock_time():
    air = AirConditions(co2_ppm=555)
    clock = ManualClock()
    src = source(air, "scd4x", clock=clock, stuck_after_s=3600)
    air.stuck.add(SCD4X)
    data, problems = await src.sample()
    assert (data.co2_ppm, problems) == (555, [])
    air.co2_ppm, air.temperature_c, air.humidity_pct = 900, 23.0, 50.0  # the chip stays
    await clock.sleep(1800)
    data, problems = await src.sample()
    assert (data.co2_ppm, problems) == (555, []), "not stuck yet"
    await clock.sleep(1800)
    data, problems = await src.sample()
    assert (data.co2_ppm, data.temperature_c, data.sensor_ok) == (None, None, False)
    assert "stuck" in problems[0]
    air.stuck.clear()
    await clock.sleep(30)
    data, problems = await src.sample()
    assert (data.co2_ppm, problems) == (900, [])


async def test_a_moving_sensor_is_never_called_stuck():
    air = AirConditions(co2_ppm=500)
    clock = ManualClock()
    src = source(air, "scd4x", clock=clock, stuck_after_s=3600)
    for step in range(10):
        # the smallest steps the chip can tell apart; the simulated chips have no noise
        air.co2_ppm = 500 + step % 2
        air.temperature_c = 21.0 + 0.01 * (step % 2)
        air.humidity_pct = 45.0 + 0.01 * (step % 2)
        data, problems = await src.sample()
        assert problems == []
        await clock.sleep(900)


# -- the run loop and its sink ------------------------------------------------------------------
async def test_run_reports_faults_and_recovery_to_the_sink():
    air = AirConditions(co2_ppm=640)
    air.absent.update({SCD4X, SHT})
    clock = ScaledClock(speed=1000)  # 30 s intervals in 30 ms
    sink = Recorder()
    task = asyncio.create_task(source(air, "scd4x", "sht4x", clock=clock).run(sink))
    try:
        first = await sink.until(lambda d: isinstance(d, EnvironmentData))
        assert (first.co2_ppm, first.temperature_c, first.sensor_ok) == (None, None, False)
        assert "scd4x@0x62" in (sink.faults["environment"] or "")
        air.absent.clear()
        well = await sink.until(lambda d: d.sensor_ok, after=sink.mark())
        assert well.co2_ppm == 640
        assert sink.faults["environment"] is None, "well again"
    finally:
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_room_without_sensors_reports_nothing():
    sink = Recorder()
    await source(AirConditions()).run(sink)  # returns at once
    assert (sink.data, sink.faults) == ([], {})
