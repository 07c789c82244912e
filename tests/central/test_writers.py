"""The v1 writer against a real InfluxDB 1.x: bad lines isolated, outages retried."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.central.mapping import to_lines
from gateway.central.writers import BadRequestError, InfluxV1Writer, WriterUnavailableError
from gateway.launch.influxd import Influxd
from gateway.models import OccupancyData, make_envelope

DB = "learnroom"
TS = datetime(2026, 11, 22, 11, 0, tzinfo=UTC)


@pytest.fixture
def influx(influxd: Influxd) -> Influxd:
    """conftest's InfluxDB 1.x with the ``learnroom`` database."""
    return influxd


def lines_for(room: str, n: int) -> list[str]:
    out = []
    for i in range(n):
        env = make_envelope("s", room, OccupancyData(people=i, occupied=True), TS, i)
        out += [
            line.replace(str(int(TS.timestamp() * 1000)), str(int(TS.timestamp() * 1000) + i))
            for line in to_lines(env)
        ]
    return out


def count(influx: Influxd, room: str) -> int:
    res = influx.query(f"SELECT count(people) FROM occupancy WHERE room = '{room}'", DB)
    series = res["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def test_good_lines_land_and_bad_ones_are_isolated_with_a_reason(influx: Influxd):
    good = lines_for("mixed", 50)
    conflict = "occupancy,room=mixed,site=s people=1.5 1795000000000"  # people is an integer
    garbage = "this is not line protocol"
    batch = [*good[:20], conflict, *good[20:40], garbage, *good[40:]]
    result = InfluxV1Writer(influx.url, DB).write(batch)
    assert result.written == 50
    assert {line for line, _ in result.rejected} == {conflict, garbage}
    reasons = dict(result.rejected)
    assert "conflict" in reasons[conflict]
    assert "unable to parse" in reasons[garbage]
    assert count(influx, "mixed") == 50


def test_database_down_is_retried_then_said(influx: Influxd):
    waits: list[float] = []
    influx.stop()
    writer = InfluxV1Writer(influx.url, DB, attempts=3, sleep=waits.append, timeout_s=2)
    with pytest.raises(WriterUnavailableError, match="did not take 5 lines"):
        writer.write(lines_for("down", 5))
    assert len(waits) == 2
    assert waits[1] > waits[0] / 2, "backoff grows"
    influx.start()
    assert writer.write(lines_for("down", 5)).written == 5, "resumes by itself"
    assert count(influx, "down") == 5


def test_wrong_database_is_not_blamed_on_the_data(influx: Influxd):
    with pytest.raises(BadRequestError, match="404"):
        InfluxV1Writer(influx.url, "no_such_db").write(lines_for("x", 1))
