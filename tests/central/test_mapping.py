"""Envelopes to InfluxDB points, checked by writing them to a real InfluxDB 1.x and reading back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision

from gateway.central.mapping import to_lines, to_points
from gateway.launch.influxd import Influxd
from gateway.models import (
    AlertData,
    EnvironmentData,
    EventData,
    HealthData,
    LockerData,
    OccupancyData,
    SlotState,
    StatusData,
    WifiData,
    make_envelope,
)

TS = datetime(2026, 11, 22, 11, 0, 0, 123000, tzinfo=UTC)
DB = "learnroom"


@pytest.fixture(scope="module")
def influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    import shutil

    if shutil.which("influxd") is None:
        pytest.fail("influxd is required; run scripts/test (installs the Debian package influxdb)")
    server = Influxd(tmp_path_factory.mktemp("influx"))
    server.start()
    server.query(f"CREATE DATABASE {DB}")
    yield server
    server.stop()


def env(data, seq: int = 1, site: str = "site-a", room: str = "room-1"):
    return make_envelope(site, room, data, TS, seq)


def rows(influx: Influxd, q: str) -> list[dict]:
    return influx.rows(q, DB)


def test_each_kind_lands_in_its_measurement_with_its_types(influx: Influxd):
    lines = []
    lines += to_lines(
        env(
            OccupancyData(people=7, occupied=True, seats_total=8, seats_free=1, capacity=24),
            room="occ",
        )
    )
    lines += to_lines(env(EnvironmentData(co2_ppm=812, temperature_c=21.5), room="occ"))
    lines += to_lines(
        env(
            LockerData(
                door_open=True,
                slots=[
                    SlotState(slot="1", present=False, charging=False),
                    SlotState(slot="2", present=True),
                ],
            ),
            room="occ",
        ),
        "a",
    )
    lines += to_lines(
        env(
            EventData(
                type="checkout", locker="a", slot="1", borrower="0123456789abcdef0123456789abcdef"
            ),
            room="occ",
        )
    )
    lines += to_lines(env(HealthData(uptime_s=12.5, outbox_depth=3, outbox_dropped=0), room="occ"))
    lines += to_lines(env(StatusData(online=False, version="0.1.0"), room="occ"))
    lines += to_lines(
        env(
            AlertData(rule="co2", severity="warning", firing=True, message="Bitte lüften"),
            room="occ",
        ),
        "co2",
    )
    influx.write(lines, DB)
    (occ,) = rows(influx, "SELECT * FROM occupancy WHERE room = 'occ'")
    assert (occ["people"], occ["seats_free"], occ["occupied"], occ["time"]) == (
        7,
        1,
        True,
        int(TS.timestamp() * 1000),
    )
    (air,) = rows(influx, "SELECT * FROM environment WHERE room = 'occ'")
    assert (air["co2_ppm"], air["temperature_c"]) == (812.0, 21.5)
    assert "humidity_pct" not in air or air["humidity_pct"] is None, "nulls are left out"
    slots = rows(influx, "SELECT * FROM locker_slot WHERE room = 'occ' GROUP BY slot")
    assert {(s["slot"], s["present"]) for s in slots} == {("1", False), ("2", True)}
    (event,) = rows(influx, "SELECT * FROM locker_event WHERE room = 'occ' GROUP BY *")
    assert (event["type"], event["count"]) == ("checkout", 1)
    assert "borrower" not in event, "the pseudonym never reaches the database"
    fields = rows(influx, "SHOW FIELD KEYS FROM gateway")
    types = {f["fieldKey"]: f["fieldType"] for f in fields}
    assert types["outbox_depth"] == "integer"
    assert types["uptime_s"] == "float"
    (status,) = rows(influx, "SELECT online, version FROM gateway WHERE room = 'occ'")
    assert (status["online"], status["version"]) == (False, "0.1.0")
    (alert,) = rows(influx, "SELECT * FROM alert WHERE room = 'occ' GROUP BY *")
    assert (alert["rule"], alert["severity"], alert["firing"]) == ("co2", "warning", True)
    assert alert["message"] == "Bitte lüften"


def test_redelivery_changes_nothing(influx: Influxd):
    lines = to_lines(env(OccupancyData(people=2, occupied=True), room="dup"))
    influx.write(lines, DB)
    influx.write(lines, DB)  # at-least-once: the same point again
    assert len(rows(influx, "SELECT * FROM occupancy WHERE room = 'dup'")) == 1


tag_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00"),
    min_size=1,
    max_size=32,
) | st.sampled_from(["a b", "a,b", "a=b", 'Café "Süd"', "end\\", "x\\ y", "new\nline", "\\"])


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ssid=tag_text)
def test_any_ssid_survives_line_protocol(influx: Influxd, ssid: str):
    seq = abs(hash(ssid)) % 10**9
    room = f"r{seq}"
    influx.write(to_lines(env(WifiData(ssid=ssid, rssi_dbm=-60, ok=True), room=room)), DB)
    (row,) = rows(influx, f"SELECT * FROM wifi WHERE room = '{room}' GROUP BY *")
    expected = ssid.replace("\r", " ").replace("\n", " ").rstrip("\\") or "_"
    assert row["ssid"] == expected
    assert row["rssi_dbm"] == -60.0


# a test oracle: the same values through influxdb-client's own serializer
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
any_text = st.text(max_size=24)


@settings(deadline=None)  # the first example imports influxdb-client's serializer
@given(
    ssid=any_text,
    bssid=any_text,
    rssi=st.floats(-120, 0),
    bitrate=finite.filter(lambda f: f >= 0) | st.none(),
    ok=st.booleans(),
    # slot ids are ids now (models.ID_PATTERN); ssid, bssid and the locker sub stay any text
    slot=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}", fullmatch=True),
    locker=any_text.filter(bool),
    people=st.integers(0, 2**40) | st.none(),
)
def test_lines_equal_influxdb_clients_point_for_any_values(
    ssid, bssid, rssi, bitrate, ok, slot, locker, people
):
    envelopes = [
        (env(WifiData(ssid=ssid, bssid=bssid, rssi_dbm=rssi, bitrate_mbps=bitrate, ok=ok)), None),
        (env(LockerData(door_open=ok, slots=[SlotState(slot=slot, present=ok)])), locker),
        (env(OccupancyData(people=people, occupied=ok)), None),
    ]
    for envelope, sub in envelopes:
        for row in to_points(envelope, sub):
            point = Point(row.measurement)
            for key, value in row.tags:
                point = point.tag(key, value)
            for name, field in row.fields:
                point = point.field(name, field)
            point = point.time(row.time_ms, WritePrecision.MS)
            assert row.line() == point.to_line_protocol()


# -- forward compatibility: what a newer gateway adds never changes what is stored ----------

_finite = st.floats(allow_nan=False, allow_infinity=False)
_opt = st.none() | st.floats(0, 100)
_id = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,8}", fullmatch=True)
_KNOWN_DATA = st.one_of(
    st.builds(
        OccupancyData,
        people=st.none() | st.integers(0, 2**63 - 1),
        occupied=st.booleans(),
        seats_free=st.none() | st.integers(0, 500),
    ),
    st.builds(EnvironmentData, co2_ppm=st.none() | st.floats(0, 40000), humidity_pct=_opt),
    st.builds(
        WifiData,
        ssid=st.none() | st.text(max_size=32),
        bssid=st.none() | st.text(max_size=17),
        rssi_dbm=st.none() | st.floats(-120, 0),
        ok=st.booleans(),
    ),
    st.builds(
        HealthData,
        uptime_s=st.floats(0, 1e12),
        cpu_temp_c=st.none() | _finite,
        outbox_depth=st.integers(0, 2**63 - 1),
        outbox_dropped=st.integers(0, 10),
    ),
    st.builds(StatusData, online=st.booleans(), version=st.none() | st.text(max_size=20)),
    st.builds(
        LockerData,
        door_open=st.booleans(),
        slots=st.lists(
            st.builds(
                SlotState, slot=_id, present=st.booleans(), charging=st.none() | st.booleans()
            ),
            max_size=4,
        ),
    ),
    st.builds(
        EventData,
        type=st.sampled_from(["checkout", "return", "door_opened", "roamed"]),
        locker=st.none() | _id,
        slot=st.none() | _id,
    ),
    st.builds(
        AlertData,
        rule=st.just("co2"),
        severity=st.sampled_from(["info", "warning", "critical"]),
        firing=st.booleans(),
        message=st.text(max_size=20),
    ),
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | _finite | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
_extras = st.dictionaries(st.text(min_size=1, max_size=12), _json, max_size=4)


def _add(target: dict, extras: dict) -> list[str]:
    """Add the extras whose names the target does not have; return those names."""
    added = [k for k in extras if k not in target]
    target.update({k: extras[k] for k in added})
    return added


@given(_KNOWN_DATA, _extras, _extras, _extras)
def test_extra_fields_anywhere_store_exactly_what_the_message_without_them_stores(
    data, at_envelope, at_data, at_slot
):
    """Any valid message plus arbitrary extra fields maps to the same lines (DESIGN.md
    "Compatibility"), and every extra name is reported for counting."""
    from gateway.central.validate import Accepted, check

    kind = env(data).kind
    sub = {"lockers": "/tablets", "alerts": "/co2"}.get(kind, "")
    topic = f"learnroom/v1/site-a/room-1/{kind}{sub}"
    plain = env(data).model_dump_json()
    wire = json.loads(plain)
    expected = list(_add(wire, at_envelope))
    expected += [f"data.{n}" for n in _add(wire["data"], at_data)]
    if kind == "lockers" and wire["data"]["slots"]:
        expected += [f"data.slots.{n}" for n in _add(wire["data"]["slots"][0], at_slot)]
    now = TS + timedelta(minutes=1)
    before = check(topic, plain.encode(), now=now)
    after = check(topic, json.dumps(wire).encode(), now=now)
    assert isinstance(before, Accepted)
    assert isinstance(after, Accepted), after
    assert to_lines(after.envelope, after.topic.sub) == to_lines(before.envelope, before.topic.sub)
    assert sorted(after.unknown) == sorted(expected)


def test_an_event_type_from_a_newer_gateway_is_no_point():
    from gateway.central.validate import Accepted, check

    wire = json.loads(env(EventData(type="checkout", locker="a", slot="1")).model_dump_json())
    wire["data"]["type"] = "self_destruct"
    result = check("learnroom/v1/site-a/room-1/events", json.dumps(wire).encode(), now=TS)
    assert isinstance(result, Accepted)
    assert to_lines(result.envelope) == []
    assert result.unknown == ("data.type=self_destruct",)
