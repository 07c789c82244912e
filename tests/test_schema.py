"""The published JSON Schema (``learnroom schema``) says what the models enforce.

Each envelope below goes through the independent ``jsonschema`` validator, with its format
checker, and through ``parse_envelope``; the two must agree. Out of the schema's reach, and so
not listed: NaN (JSON has none) and ``5.0`` for an integer (JSON Schema counts it as one; the
models refuse it, and no gateway sends it).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from pydantic import ValidationError

from gateway.models import (
    EnvironmentData,
    EventData,
    LockerData,
    OccupancyData,
    SlotState,
    StatusData,
    envelope_json_schema,
    make_envelope,
    parse_envelope,
)

TS = datetime(2026, 11, 22, 11, 0, 0, 123000, tzinfo=UTC)


def wire(data: Any, seq: int | None = 1) -> dict[str, Any]:
    return json.loads(make_envelope("site-a", "room-1", data, TS, seq).model_dump_json())


OCC = wire(OccupancyData(people=7, occupied=True, capacity=24))
LOCKER = wire(LockerData(door_open=False, slots=[SlotState(slot="1", present=True)]))
EVENT = wire(EventData(type="checkout", locker="tablets", slot="1"))
STATUS = wire(StatusData(online=True, version="1.2", started=TS), seq=None)
ENV = wire(EnvironmentData(co2_ppm=800.0))

Change = Callable[[dict[str, Any]], object]


def _set(path: str, value: object) -> Change:
    *parents, last = path.split(".")

    def change(doc: dict[str, Any]) -> None:
        node: Any = doc
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is _DELETE:
            del node[last]
        else:
            node[int(last) if last.isdigit() else last] = value

    return change


_DELETE = object()

GOOD: list[tuple[str, dict[str, Any], Change]] = [
    ("as sent", OCC, _set("v", 1)),
    ("no v", OCC, _set("v", _DELETE)),
    ("last will: no seq", STATUS, _set("seq", _DELETE)),
    ("offset zone", OCC, _set("ts", "2026-11-22T12:00:00+01:00")),
    ("no fraction", OCC, _set("ts", "2026-11-22T11:00:00Z")),
    ("nanoseconds", OCC, _set("ts", "2026-11-22T11:00:00.123456789Z")),
    ("largest seq", OCC, _set("seq", 2**63 - 1)),
    ("newer field in data", OCC, _set("data.new_sensor", {"a": [1]})),
    ("newer field in envelope", OCC, _set("origin", "fw-2")),
    ("newer field in a slot", LOCKER, _set("data.slots.0.battery_pct", 80)),
    ("newer event type", EVENT, _set("data.type", "fire_drill")),
    ("int for a float", ENV, _set("data.co2_ppm", 800)),
    ("capitals in a locker id", EVENT, _set("data.locker", "Tablets_A")),
]
BAD: list[tuple[str, dict[str, Any], Change]] = [
    ("yesterday", OCC, _set("ts", "yesterday")),
    ("no zone", OCC, _set("ts", "2026-11-22T11:00:00")),
    ("space for T", OCC, _set("ts", "2026-11-22 11:00:00Z")),
    ("31 February", OCC, _set("ts", "2026-02-31T11:00:00Z")),
    ("hour 24", OCC, _set("ts", "2026-11-22T24:00:00Z")),
    ("year 1", OCC, _set("ts", "0001-01-01T00:00:00+01:00")),
    ("year 9999", OCC, _set("ts", "9999-12-31T23:59:59-01:00")),
    ("unix time", OCC, _set("ts", 1_764_000_000)),
    ("started without zone", STATUS, _set("data.started", "2026-11-22T11:00:00")),
    ("v 2", OCC, _set("v", 2)),
    ("v true", OCC, _set("v", True)),
    ("seq beyond int64", OCC, _set("seq", 2**63)),
    ("seq 2**70", OCC, _set("seq", 2**70)),
    ("negative seq", OCC, _set("seq", -1)),
    ("seq as text", OCC, _set("seq", "5")),
    ("people beyond int64", OCC, _set("data.people", 2**64)),
    ("float people", OCC, _set("data.people", 1.5)),
    ("co2 out of range", ENV, _set("data.co2_ppm", 40001)),
    ("site capitals", OCC, _set("site", "Site-A")),
    ("site trailing newline", OCC, _set("site", "site-a\n")),
    ("slot with a space", LOCKER, _set("data.slots.0.slot", "slot 1")),
    ("slot trailing newline", LOCKER, _set("data.slots.0.slot", "1\n")),
    ("locker with a comma", EVENT, _set("data.locker", "a,b")),
    ("event type with capitals", EVENT, _set("data.type", "Checkout")),
    ("unknown kind", OCC, _set("kind", "weather")),
    ("no data", OCC, _set("data", _DELETE)),
    ("missing occupied", OCC, _set("data.occupied", _DELETE)),
    ("bool as text", OCC, _set("data.occupied", "true")),
]


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    checker = FormatChecker()
    assert "date-time" in checker.checkers, "install rfc3339-validator (the [dev] extra)"
    schema = envelope_json_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=checker)


def _models_accept(doc: dict[str, Any]) -> bool:
    try:
        parse_envelope(json.dumps(doc))
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(("name", "base", "change"), GOOD, ids=[c[0] for c in GOOD])
def test_good_envelopes_pass_both(validator, name, base, change):
    doc = copy.deepcopy(base)
    change(doc)
    assert not list(validator.iter_errors(doc)), name
    assert _models_accept(doc), name


@pytest.mark.parametrize(("name", "base", "change"), BAD, ids=[c[0] for c in BAD])
def test_bad_envelopes_fail_both(validator, name, base, change):
    doc = copy.deepcopy(base)
    change(doc)
    assert list(validator.iter_errors(doc)), f"the schema lets {name!r} through"
    assert not _models_accept(doc), f"the models let {name!r} through"


def test_schema_names_formats_ranges_and_patterns():
    text = json.dumps(envelope_json_schema())
    assert '"format": "date-time"' in text
    assert '"maximum": 9223372036854775807' in text
    assert '"additionalProperties": false' not in text, "newer senders add fields (DESIGN.md)"
