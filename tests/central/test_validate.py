"""Hostile input to the central side: every message is accepted or refused with a reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from gateway.central.validate import REASONS, Accepted, Rejected, check
from gateway.models import OccupancyData, make_envelope

GOOD = make_envelope(
    "site-a",
    "room-1",
    OccupancyData(people=3, occupied=True),
    datetime(2026, 11, 22, tzinfo=UTC),
    5,
)
TOPIC = "learnroom/v1/site-a/room-1/occupancy"


def test_a_good_message_is_accepted():
    result = check(TOPIC, GOOD.model_dump_json().encode())
    assert isinstance(result, Accepted)
    assert result.envelope == GOOD


def reason(topic: str, payload: bytes) -> str:
    result = check(topic, payload)
    assert isinstance(result, Rejected), result
    return result.reason


def test_each_reason():
    wire = json.loads(GOOD.model_dump_json())
    assert reason(TOPIC, b"x" * 70000) == "oversized"
    assert reason("learnroom/v1/site-a/occupancy", b"{}") == "bad_topic"
    assert reason(TOPIC, b"{nope") == "not_json"
    assert reason(TOPIC, json.dumps({**wire, "v": 2}).encode()) == "unknown_version"
    # found by the hostile-input test: a "v" that cannot be hashed, or a bool posing as 1
    assert reason(TOPIC, json.dumps({**wire, "v": []}).encode()) == "unknown_version"
    assert reason(TOPIC, json.dumps({**wire, "v": True}).encode()) == "unknown_version"
    assert reason(TOPIC, json.dumps({**wire, "seq": -1}).encode()) == "invalid"
    assert reason("learnroom/v1/site-b/room-1/occupancy", GOOD.model_dump_json().encode()) == (
        "topic_mismatch"
    )


def test_an_empty_retained_payload_is_no_reading():
    assert check("learnroom/v1/site-a/room-1/alerts/co2", b"") is None


@given(st.text(max_size=120), st.binary(max_size=600))
def test_anything_at_all_gets_an_answer_never_an_exception(topic, payload):
    result = check(topic, payload)
    assert result is None or isinstance(result, Accepted) or result.reason in REASONS


@given(
    st.dictionaries(
        st.sampled_from(["v", "site", "room", "kind", "ts", "seq", "data"]),
        st.none() | st.integers() | st.text(max_size=20),
        max_size=7,
    )
)
def test_envelope_shaped_garbage_is_refused(fields):
    result = check(TOPIC, json.dumps(fields).encode())
    assert isinstance(result, Rejected)
