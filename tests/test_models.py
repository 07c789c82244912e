"""The envelope contract: what goes on the wire and what is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from gateway.errors import TopicError
from gateway.models import (
    INT64_MAX,
    EnvironmentData,
    EventData,
    HealthData,
    LockerData,
    OccupancyData,
    SlotState,
    StatusData,
    make_envelope,
    parse_envelope,
)
from gateway.topics import Topic


def test_envelope_wire_format_matches_design():
    ts = datetime(2026, 11, 22, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    env = make_envelope(
        "stadtbuecherei-mitte", "lernraum-1", OccupancyData(people=7, occupied=True), ts, 40211
    )
    wire = json.loads(env.model_dump_json())
    assert wire["ts"] == "2026-11-22T11:00:00.123Z", "UTC, milliseconds, Z"
    assert (wire["v"], wire["kind"], wire["seq"]) == (1, "occupancy", 40211)
    assert wire["data"]["people"] == 7
    assert parse_envelope(env.model_dump_json()) == env


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda w: w.update(v=2), "v"),
        (lambda w: w.update(site="Bad Site"), "site"),
        (lambda w: w["data"].update(people=-1), "people"),
        (lambda w: w.update(ts="2026-11-22T11:00:00"), "ts"),
        (lambda w: w.update(kind="weather"), "kind"),
        (lambda w: w.update(ts="0001-01-01T00:00:00+01:00"), "ts"),  # overflowed in astimezone
        (lambda w: w.update(ts="9999-12-31T23:59:59-01:00"), "ts"),
        (lambda w: w.update(ts="2026-02-30T11:00:00Z"), "ts"),
        (lambda w: w.update(ts=1_764_000_000), "ts"),  # lax pydantic took a number
        (lambda w: w.update(seq=2**70), "seq"),
        (lambda w: w.update(seq=2**63), "seq"),
        (lambda w: w.update(seq="5"), "seq"),  # JSON types are strict on the wire
        (lambda w: w.update(site="site-a\n"), "site"),
    ],
)
def test_invalid_envelopes_name_the_field(mutate, field):
    env = make_envelope("s", "r", OccupancyData(people=1, occupied=True), datetime.now(UTC), 1)
    wire = json.loads(env.model_dump_json())
    mutate(wire)
    with pytest.raises(ValidationError) as info:
        parse_envelope(json.dumps(wire))
    assert field in str(info.value)


def test_physical_ranges_are_enforced():
    with pytest.raises(ValidationError, match="co2_ppm"):
        EnvironmentData(co2_ppm=50000.0)
    with pytest.raises(ValidationError, match="humidity_pct"):
        EnvironmentData(humidity_pct=101.0)


def test_topics_round_trip_and_refuse_nonsense():
    t = Topic("learnroom/v1", "site-a", "room-1", "lockers", "a")
    assert str(t) == "learnroom/v1/site-a/room-1/lockers/a"
    assert Topic.parse(str(t)) == t
    assert t.live
    assert not Topic("learnroom/v1", "s", "r", "events").live
    for bad in (
        "learnroom/v1/site-a/room-1/lockers",  # lockers need the locker id
        "learnroom/v1/Site/room-1/occupancy",
        "learnroom/v1/site-a/room-1/weather",
        "learnroom/v1/site-a/room-1/occupancy/extra",
        "other/v1/site-a/room-1/occupancy",
        "learnroom/v1/+/room-1/occupancy",
    ):
        with pytest.raises(TopicError):
            Topic.parse(bad)


def test_schema_command_prints_a_json_schema():
    run = subprocess.run(
        [sys.executable, "-m", "gateway", "schema"], capture_output=True, text=True, check=True
    )
    schema = json.loads(run.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    kinds = set(schema["discriminator"]["mapping"])
    assert kinds == {
        "status",
        "occupancy",
        "environment",
        "wifi",
        "lockers",
        "events",
        "health",
        "alerts",
    }


def _wire(data, kind_ts=None) -> dict:
    env = make_envelope("s", "r", data, kind_ts or datetime.now(UTC), 1)
    return json.loads(env.model_dump_json())


def test_a_newer_senders_fields_are_dropped_and_named_not_refused():
    env = make_envelope(
        "s",
        "r",
        LockerData(door_open=True, slots=[SlotState(slot="1", present=True)]),
        datetime.now(UTC),
        7,
    )
    wire = json.loads(env.model_dump_json())
    wire["origin"] = {"fw": [1, 2]}
    wire["data"]["lock_state"] = "locked"
    wire["data"]["slots"][0]["battery_pct"] = 80
    unknown: list[str] = []
    parsed = parse_envelope(json.dumps(wire), unknown)
    assert parsed == env, "every known field kept, the rest ignored"
    assert sorted(unknown) == ["data.lock_state", "data.slots.battery_pct", "origin"]
    assert "lock_state" not in parsed.model_dump_json()


def test_a_new_event_type_is_kept_and_named_but_cannot_be_built():
    wire = _wire(EventData(type="checkout", locker="a", slot="1"))
    wire["data"]["type"] = "fire_drill"
    unknown: list[str] = []
    data = parse_envelope(json.dumps(wire), unknown).data
    assert isinstance(data, EventData)
    assert data.type == "fire_drill"
    assert unknown == ["data.type=fire_drill"]
    with pytest.raises(ValidationError, match="unknown event type"):
        EventData(type="fire_drill")


def test_what_a_gateway_builds_is_strict():
    """The agent builds with the same models: a typo must fail there, not travel."""
    with pytest.raises(ValidationError, match="unknown field"):
        OccupancyData(people=1, occupied=True, seats_fre=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="unknown field"):
        SlotState.model_validate({"slot": "1", "present": True, "extra": 1})
    with pytest.raises(ValidationError, match="unknown field"):
        make_envelope("s", "r", OccupancyData(occupied=False), datetime.now(UTC), 1).__class__(
            site="s",  # type: ignore[call-arg]
            room="r",
            ts=datetime.now(UTC),
            data={"occupied": False},
            origin="x",
        )


def test_timestamps_need_a_zone_and_a_sane_year_everywhere():
    naive = datetime(2026, 11, 22, 11, 0)  # noqa: DTZ001 - the point of the test
    for bad in (naive, "2026-11-22T11:00:00", "1999-12-31T23:59:59Z", "2100-01-01T00:00:00Z"):
        with pytest.raises(ValidationError, match="started"):
            StatusData(online=True, started=bad)
        with pytest.raises(ValidationError, match="due"):
            EventData(type="overdue", due=bad)
    ts = datetime(2026, 11, 22, 12, 0, 0, 123999, tzinfo=timezone(timedelta(hours=1)))
    assert StatusData(online=True, started=ts).started == datetime(
        2026, 11, 22, 11, 0, 0, 123000, tzinfo=UTC
    )


def test_numbers_the_store_cannot_hold_are_refused():
    assert HealthData(uptime_s=1, outbox_depth=INT64_MAX, outbox_dropped=0).outbox_depth
    with pytest.raises(ValidationError, match="outbox_depth"):
        HealthData(uptime_s=1, outbox_depth=INT64_MAX + 1, outbox_dropped=0)
    for text in ("NaN", "Infinity", "1e400"):
        wire = json.dumps(_wire(HealthData(uptime_s=1, outbox_depth=0, outbox_dropped=0)))
        assert '"cpu_temp_c": null' in wire
        with pytest.raises(ValidationError, match="cpu_temp_c"):
            parse_envelope(wire.replace('"cpu_temp_c": null', f'"cpu_temp_c": {text}'))


@pytest.mark.parametrize("bad", ["a\n", "a ", "", "-a", "a,b", "a=b", "a" * 64, "ä"])
def test_locker_and_slot_ids_are_whole_ids(bad: str):
    """Rust's "$" (pydantic's patterns) is the end of the text, unlike Python's re.match."""
    with pytest.raises(ValidationError):
        SlotState(slot=bad, present=True)
    with pytest.raises(ValidationError):
        EventData(type="checkout", locker=bad)
