"""The simulated world: deterministic for a seed, plausible over a day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.sim.world import RoomWorld


def day(seed: str) -> tuple[list[tuple[str, str | None]], list[float]]:
    world = RoomWorld(seed, capacity=24, seats=8, slots=[("a", "1"), ("a", "2")])
    now = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)  # 06:00 in Berlin
    events, co2 = [], []
    for _ in range(24 * 60):
        now += timedelta(minutes=1)
        events += [(h.what, h.slot) for h in world.step(now, 60)]
        co2.append(world.state.co2_ppm)
        assert world.state.people >= 0
    return events, co2


def test_same_seed_same_day_other_seed_other_day():
    assert day("1") == day("1")
    assert day("1") != day("2")


def test_a_day_looks_like_a_learning_room():
    events, co2 = day("1")
    kinds = [what for what, _ in events]
    assert kinds.count("enter") == kinds.count("leave"), "everyone leaves by closing time"
    assert kinds.count("enter") > 50
    assert kinds.count("borrow") >= 1
    assert 1 <= kinds.count("return") <= kinds.count("borrow"), "late ones come back tomorrow"
    assert max(co2) > 1000, "a busy room needs airing"
    assert min(co2) < 500, "and the air is fresh again overnight"


def test_a_simulated_pin_keeps_a_bounded_history():
    """gpiozero's MockPin records every change; a simulated room runs for days."""
    from gateway.sim.pins import sim_factory

    pin = sim_factory().pin(17)
    for i in range(1000):
        pin.drive_high() if i % 2 else pin.drive_low()
    assert 0 < len(pin.states) <= 16
    assert pin.state is True  # the last drive is what the pin says
