"""Lockers through gpiozero's MockFactory: loans, due times, badges, relay, privacy."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.agent.config import LockersSection, OccupancySection, RoomSection
from gateway.agent.sources.badge import QueueBadgeReader, pseudonymise
from gateway.agent.sources.lockers import LockersSource
from gateway.clock import ScaledClock
from gateway.models import LockerData
from gateway.sim.pins import RoomPins, sim_factory
from tests.sink import Recorder

SECRET = b"site-secret-for-tests-only"
BADGE = "04A1B2C3D4E5F6"
ROOM = RoomSection(site="s", room="r", timezone="Europe/Berlin")


def section(**kw) -> LockersSection:
    return LockersSection.model_validate(
        {
            "banks": [
                {
                    "id": "a",
                    "door_pin": 22,
                    "relay_pin": 27,
                    "slots": [
                        {"slot": "1", "present_pin": 23, "charging_pin": 24},
                        {"slot": "2", "present_pin": 25},
                    ],
                }
            ],
            "badge": {"device": "stdin", "allow": kw.pop("allow", "any")},
            **kw,
        }
    )


async def start(clock, cfg: LockersSection, state: Path | None = None, out: tuple[str, ...] = ()):
    factory = sim_factory()
    pins = RoomPins(factory, OccupancySection(), cfg)  # the hardware is there before we start
    for slot in out:
        pins.take_device("a", slot)
    reader = QueueBadgeReader()
    src = LockersSource(
        cfg, ROOM, 30, clock, factory, badge_reader=reader, secret=SECRET, state_path=state
    )
    sink = Recorder()
    task = asyncio.create_task(src.run(sink))
    await src.opened.wait()
    return src, sink, task, pins, reader


async def stop(task):
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_badge_checkout_return_with_due_at_closing_time():
    # 2026-11-24 10:00 in Berlin
    clock = ScaledClock(start=datetime(2026, 11, 24, 9, 0, tzinfo=UTC), speed=1)
    src, sink, task, pins, reader = await start(clock, section())
    try:
        reader.queue.put_nowait(BADGE)
        accepted = await sink.event("badge_accepted")
        assert accepted.borrower == pseudonymise(BADGE, SECRET)
        await asyncio.sleep(0.05)
        assert pins.relay_on("a"), "the door relay opens for an accepted badge"
        pins.door("a", True)
        await sink.event("door_opened")
        pins.take_device("a", "1")
        await asyncio.sleep(0.05)
        pins.door("a", False)
        checkout = await sink.event("checkout")
        assert (checkout.locker, checkout.slot) == ("a", "1")
        assert checkout.borrower == accepted.borrower
        assert checkout.due == datetime(2026, 11, 24, 19, 0, tzinfo=UTC), "20:00 in Berlin"
        await sink.event("door_closed")
        state = [d for d, sub in sink.items if isinstance(d, LockerData) and sub == "a"][-1]
        assert state.slots[0].present is False
        assert state.slots[0].charging is False
        assert state.slots[1].charging is None, "no charging input fitted"
        pins.return_device("a", "1")
        ret = await sink.event("return")
        assert ret.borrower == accepted.borrower
    finally:
        await stop(task)


async def test_denied_badge_opens_nothing():
    allowed = pseudonymise("0400000000AA", SECRET)
    clock = ScaledClock(speed=1)
    src, sink, task, pins, reader = await start(clock, section(allow=[allowed]))
    try:
        reader.queue.put_nowait(BADGE)
        denied = await sink.event("badge_denied")
        assert denied.borrower == pseudonymise(BADGE, SECRET)
        assert not pins.relay_on("a")
    finally:
        await stop(task)


async def test_overdue_once_and_due_across_the_dst_change(tmp_path: Path):
    # Sat 2026-03-28 21:30 Berlin (UTC+1), after closing: due Sunday 20:00, which is CEST (UTC+2)
    clock = ScaledClock(start=datetime(2026, 3, 28, 20, 30, tzinfo=UTC), speed=36000)
    src, sink, task, pins, reader = await start(clock, section(), tmp_path / "loans.json")
    try:
        pins.take_device("a", "2")
        checkout = await sink.event("checkout")
        assert checkout.due == datetime(2026, 3, 29, 18, 0, tzinfo=UTC)
        overdue = await sink.event("overdue", timeout=20)
        assert (overdue.slot, overdue.due) == ("2", checkout.due)
        await asyncio.sleep(0.2)
        assert len(sink.events("overdue")) == 1, "said once per loan"
    finally:
        await stop(task)


async def test_loans_survive_a_restart(tmp_path: Path):
    state = tmp_path / "loans.json"
    clock = ScaledClock(start=datetime(2026, 11, 24, 9, 0, tzinfo=UTC), speed=1)
    src, sink, task, pins, reader = await start(
        clock, section(loan_due="hours", loan_hours=2), state
    )
    reader.queue.put_nowait(BADGE)
    await sink.event("badge_accepted")
    pins.take_device("a", "1")
    checkout = await sink.event("checkout")
    await stop(task)
    assert "a/1" in json.loads(state.read_text())
    # a new process: the device is still out
    src2, sink2, task2, pins2, _ = await start(
        clock, section(loan_due="hours", loan_hours=2), state, out=("1",)
    )
    try:
        pins2.return_device("a", "1")
        ret = await sink2.event("return")
        assert ret.borrower == checkout.borrower, "the loan was remembered"
    finally:
        await stop(task2)


async def test_no_clear_badge_id_in_anything_emitted():
    clock = ScaledClock(speed=1)
    src, sink, task, pins, reader = await start(clock, section())
    try:
        reader.queue.put_nowait(BADGE)
        await sink.event("badge_accepted")
        pins.take_device("a", "1")
        await sink.event("checkout")
    finally:
        await stop(task)
    text = json.dumps([d.model_dump(mode="json") for d in sink.data])
    assert BADGE not in text
    assert BADGE.lower() not in text
