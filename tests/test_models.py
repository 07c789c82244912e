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
    EnvironmentData,
    OccupancyData,
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
        (lambda w: w["data"].update(unknown=1), "unknown"),
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
