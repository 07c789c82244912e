"""The v1 writer against a real InfluxDB 1.x: bad lines isolated, outages retried."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.central.mapping import to_lines
from gateway.central.writers import BadRequestError, InfluxV1Writer, WriterUnavailableError
from gateway.launch.influxd import Influxd
from gateway.models import OccupancyData, make_envelope
from tests.central.ingest.odd_influx import OddInflux

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


@pytest.mark.parametrize("mode", ["garbage", "truncated500"])
def test_an_answer_that_is_not_http_or_is_cut_short_is_retried_not_raised_raw(mode: str):
    waits: list[float] = []
    with OddInflux(mode=mode) as odd:
        writer = InfluxV1Writer(odd.url, DB, attempts=3, sleep=waits.append, timeout_s=2)
        with pytest.raises(WriterUnavailableError, match="did not take 5 lines"):
            writer.write(lines_for("odd", 5))
    assert (odd.requests, len(waits)) == (3, 2)
    assert writer.deadline is None, "idle again"


@pytest.mark.parametrize(
    ("mode", "says"),
    [("https", "HTTPS server"), ("series", "max-series-per-database")],
)
def test_a_400_for_the_whole_request_is_held_never_split_into_refused_lines(mode, says):
    with OddInflux(mode=mode) as odd, pytest.raises(BadRequestError, match=says):
        InfluxV1Writer(odd.url, DB, sleep=lambda _: None).write(lines_for("held", 8))
    assert odd.requests == 1, "not split, not retried: an operator has to act"


def test_lines_are_refused_only_when_others_pass(influx: Influxd):
    good, conflict = lines_for("proof", 3), "occupancy,room=proof,site=s people=1.5 1795000000000"
    with OddInflux(upstream=influx.url, mode="refuse_all") as odd:
        writer = InfluxV1Writer(odd.url, DB, sleep=lambda _: None)
        with pytest.raises(BadRequestError, match="none was stored before"):
            writer.write(good)  # nothing proves the server takes any line
        odd.mode = "pass"
        assert writer.write([*good, conflict]).written == 3, "the conflict alone is refused"
        odd.mode = "refuse_all"
        with pytest.raises(BadRequestError, match="even one it stored before"):
            writer.write(lines_for("proof", 2))
        odd.mode = "pass"
        result = writer.write([conflict])  # alone, while the control line passes
    assert (result.written, [line for line, _ in result.rejected]) == (0, [conflict])
    assert count(influx, "proof") == 3
