"""The environment source with Sensirion's own drivers against the simulated chips."""

from __future__ import annotations

import asyncio

import pytest

from gateway.agent.sources.environment import EnvironmentSource
from gateway.clock import ScaledClock
from gateway.config import EnvironmentSection
from gateway.sim.i2c import AirConditions, SimBuses
from tests.sink import Recorder


def source(air: AirConditions, *kinds: str, clock: ScaledClock | None = None, **cfg):
    sensors = [{"type": k} if k != "sht3x" else {"type": k, "address": 0x45} for k in kinds]
    return EnvironmentSource(
        EnvironmentSection(sensors=sensors, **cfg),
        30,
        clock or ScaledClock(speed=1000),
        buses=SimBuses(air),
    )


async def test_vendor_drivers_read_the_room():
    air = AirConditions(co2_ppm=1234, temperature_c=23.45, humidity_pct=51.2)
    data, problems = await source(air, "scd4x", "sht4x").sample()
    assert problems == []
    assert data.co2_ppm == 1234
    assert data.temperature_c == pytest.approx(23.45, abs=0.01)
    assert data.humidity_pct == pytest.approx(51.2, abs=0.01)
    assert data.sensor_ok


async def test_dedicated_sensor_wins_over_scd4x_and_scd4x_alone_still_works():
    air = AirConditions(co2_ppm=600, temperature_c=19.0, humidity_pct=30.0)
    data, _ = await source(air, "scd4x").sample()
    assert (data.co2_ppm, data.temperature_c) == (600, pytest.approx(19.0, abs=0.01))
    data, _ = await source(air, "sht3x").sample()
    assert data.co2_ppm is None
    assert data.humidity_pct == pytest.approx(30.0, abs=0.01)


async def test_absent_sensor_gives_nulls_and_a_fault_then_recovers():
    air = AirConditions(co2_ppm=700)
    src = source(air, "scd4x", "sht4x")
    air.absent.add(0x62)
    data, problems = await src.sample()
    assert data.co2_ppm is None
    assert data.temperature_c is not None, "the other sensor still reports"
    assert not data.sensor_ok
    assert "scd4x@0x62" in problems[0]
    assert "NACK" in problems[0]
    air.absent.clear()
    data, problems = await src.sample()
    assert (data.co2_ppm, data.sensor_ok, problems) == (700, True, [])


async def test_bad_crc_is_a_fault_not_a_value():
    air = AirConditions()
    air.garbage.add(0x44)
    data, problems = await source(air, "sht4x").sample()
    assert (data.temperature_c, data.humidity_pct) == (None, None)
    assert "checksum" in problems[0]


async def test_out_of_range_value_is_dropped():
    air = AirConditions(co2_ppm=50000)  # beyond the SCD4x's 40000 ppm: a fault
    data, problems = await source(air, "scd4x").sample()
    assert data.co2_ppm is None
    assert "outside" in problems[0]


async def test_stuck_sensor_is_reported_after_the_configured_time():
    air = AirConditions(co2_ppm=555)
    clock = ScaledClock(speed=36000)  # an hour every 0.1 s
    src = source(air, "scd4x", clock=clock, stuck_after_s=3600)
    air.stuck.add(0x62)
    data, problems = await src.sample()
    assert data.co2_ppm == 555
    air.co2_ppm = 900  # the room changes, the sensor does not
    await clock.sleep(4000)
    data, problems = await src.sample()
    assert data.co2_ppm is None
    assert "stuck" in problems[0]


async def test_run_reports_faults_to_the_sink_and_never_raises():
    air = AirConditions()
    air.absent.update({0x62, 0x44})
    sink = Recorder()
    task = asyncio.create_task(source(air, "scd4x", "sht4x").run(sink))
    while len(sink.data) < 2:
        await asyncio.sleep(0.01)
    task.cancel()
    assert all(not d.sensor_ok for d in sink.data)  # type: ignore[union-attr]
    assert sink.faults["environment"] is not None


async def test_room_without_sensors_reports_nothing():
    sink = Recorder()
    await source(AirConditions()).run(sink)  # returns at once
    assert sink.data == []
