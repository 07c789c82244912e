"""Hostile input to the central side: every message is accepted or refused with a reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.central.validate import (
    REASONS,
    Accepted,
    Ignored,
    Rejected,
    UnknownNames,
    Window,
    check,
)
from gateway.models import EventData, LockerData, OccupancyData, SlotState, make_envelope

GOOD = make_envelope(
    "site-a",
    "room-1",
    OccupancyData(people=3, occupied=True),
    datetime(2026, 11, 22, tzinfo=UTC),
    5,
)
TOPIC = "learnroom/v1/site-a/room-1/occupancy"
NOW = datetime(2026, 11, 22, 0, 1, tzinfo=UTC)


def test_a_good_message_is_accepted():
    result = check(TOPIC, GOOD.model_dump_json().encode(), now=NOW)
    assert isinstance(result, Accepted)
    assert result.envelope == GOOD
    assert result.unknown == ()


def reason(topic: str, payload: bytes, now: datetime = NOW) -> str:
    result = check(topic, payload, now=now)
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
    assert check("learnroom/v1/site-a/room-1/alerts/co2", b"") == Ignored(None)


def with_(**fields: object) -> bytes:
    return json.dumps({**json.loads(GOOD.model_dump_json()), **fields}).encode()


def test_what_once_raised_is_refused_with_its_reason():
    """Each of these stopped the display for good (issue 11): retained, seen at every start."""
    assert reason(TOPIC, with_(ts="0001-01-01T00:00:00+01:00")) == "ts_too_old"
    assert reason(TOPIC, b'{"v": 1, "data": ' + b"[" * 30_000 + b"]" * 30_000 + b"}") == (
        "too_deep"
    )
    assert reason(TOPIC, b"[" * 30_000) == "too_deep"
    assert reason(TOPIC, with_(seq=2**70)) == "unstorable_number"
    assert reason(TOPIC, with_(data={"occupied": True, "people": 10**400})) == ("unstorable_number")
    assert reason(TOPIC, with_(data={"occupied": True, "people": 1.0})) == "invalid"


def test_timestamps_outside_the_window_around_now_are_refused():
    window = Window(max_age=timedelta(days=10), ahead=timedelta(minutes=5))
    ts = GOOD.ts

    def at(now: datetime) -> Accepted | Ignored | Rejected:
        return check(TOPIC, GOOD.model_dump_json().encode(), now=now, window=window)

    assert isinstance(at(ts - timedelta(minutes=4)), Accepted), "a clock a little ahead"
    assert isinstance(at(ts + timedelta(days=9)), Accepted), "a backlog days old"
    assert reason(TOPIC, with_(ts="2026-11-22T00:00:00"), now=ts) == "ts_no_zone"
    assert at(ts - timedelta(minutes=6)) == Rejected(
        "ts_future", "ts 2026-11-22T00:00:00+00:00 is ahead of 2026-11-21T23:54:00+00:00"
    )
    assert isinstance(at(ts + timedelta(days=11)), Rejected)
    assert at(ts + timedelta(days=11)).reason == "ts_too_old"  # type: ignore[union-attr]
    status = with_(kind="status", data={"online": True, "started": "2027-01-01T00:00:00Z"})
    result = check("learnroom/v1/site-a/room-1/status", status, now=NOW, window=window)
    assert isinstance(result, Rejected)
    assert result.reason == "ts_future"
    assert isinstance(check(TOPIC, with_(ts="2099-01-01T00:00:00Z")), Accepted), "no window"


def test_ids_that_would_become_tags_must_be_whole_ids():
    lockers = make_envelope(
        "site-a",
        "room-1",
        LockerData(door_open=False, slots=[SlotState(slot="1", present=True)]),
        GOOD.ts,
        1,
    )
    topic = "learnroom/v1/site-a/room-1/lockers/"
    payload = lockers.model_dump_json().encode()
    assert isinstance(check(topic + "tablets", payload, now=NOW), Accepted)
    # the topic parser matches ids whole now (re.match with "$" let a trailing newline by)
    assert reason(topic + "tablets\n", payload) == "bad_topic"
    good = GOOD.model_dump_json().encode()
    assert reason("learnroom/v1/site-a/room-1\n/occupancy", good) == "bad_topic"
    wire = json.loads(payload)
    wire["data"]["slots"][0]["slot"] = "1\n"
    assert reason(topic + "tablets", json.dumps(wire).encode()) == "bad_id"
    event = make_envelope("site-a", "room-1", EventData(type="checkout", locker="a"), GOOD.ts, 2)
    wire = json.loads(event.model_dump_json())
    wire["data"]["locker"] = "a new locker"
    assert reason("learnroom/v1/site-a/room-1/events", json.dumps(wire).encode()) == "bad_id"


def test_a_newer_senders_additions_are_accepted_and_counted():
    names = UnknownNames(max_names=3)
    extra = with_(origin="fw-2", data={"occupied": True, "people": 3, "co2_ppm": 800})
    result = check(TOPIC, extra, now=NOW)
    assert isinstance(result, Accepted)
    assert result.envelope == GOOD.model_copy(
        update={"data": OccupancyData(people=3, occupied=True)}
    )
    assert sorted(result.unknown) == ["data.co2_ppm", "origin"]
    names.count(result)
    new_kind = check("learnroom/v1/site-a/room-1/weather", b"{}", now=NOW)
    assert new_kind == Ignored("weather")
    names.count(new_kind)
    names.count(check("learnroom/v1/site-a/room-1/noise/a/b", b"x", now=NOW))
    assert names.fields == {("occupancy", "data.co2_ppm"): 1, ("occupancy", "origin"): 1}
    assert names.kinds == {"weather": 1, "_other": 1}, "a cap on names a sender can invent"
    assert reason("learnroom/v1/site-a/room-1/Weather!", b"{}") == "bad_topic"


@given(st.text(max_size=120), st.binary(max_size=600))
def test_anything_at_all_gets_an_answer_never_an_exception(topic, payload):
    result = check(topic, payload)
    assert isinstance(result, Accepted | Ignored) or result.reason in REASONS


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "2026-11-22T11:00:00",
            "2026-11-22T11:00:00.123Z",
            "2026-02-30T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "2026-11-22 11:00:00+00:00",
            "site-a\n",
            "\u0000",
            "a" * 70,
        ]
    ),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=30,
)
_KEYS = st.sampled_from(["v", "site", "room", "kind", "ts", "seq", "data"])
_DATA_KEYS = st.sampled_from(
    ["people", "occupied", "slots", "slot", "locker", "type", "due", "started", "since", "x"]
)


def _nest(depth: int) -> bytes:
    return b'{"v": 1, "data": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(
        ["occupancy", "lockers/a", "events", "status", "alerts/co2", "health", "wifi", "weather"]
    ),
    st.dictionaries(_KEYS, _JSON, max_size=7),
    st.dictionaries(_DATA_KEYS, _JSON, max_size=6),
    st.booleans(),
    st.integers(0, 50_000),
)
def test_arbitrary_json_never_raises(kind, envelope, data, with_data, depth):
    """Deep, huge, odd dates, odd strings: always an answer (issue 11)."""
    topic = f"learnroom/v1/site-a/room-1/{kind}"
    if with_data:
        envelope = {**envelope, "data": data}
    for payload in (json.dumps(envelope, allow_nan=True).encode(), _nest(depth % 400)):
        result = check(topic, payload)
        assert isinstance(result, Accepted | Ignored) or result.reason in REASONS


@given(
    st.dictionaries(
        st.sampled_from(["v", "site", "room", "kind", "ts", "seq", "data"]),
        st.none() | st.integers() | st.text(max_size=20),
        max_size=7,
    )
)
def test_envelope_shaped_garbage_is_refused(fields):
    result = check(TOPIC, json.dumps(fields).encode(), now=NOW)
    assert isinstance(result, Rejected)
