"""Alert rules without services: durations, hysteresis, overrides and config errors."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.central.alerts.rules import Finding, RoomState, Tracker, Verdict, evaluate
from gateway.central.config import load_central_config, parse_central
from gateway.central.thresholds import AboveRule
from gateway.errors import ConfigError
from gateway.models import EnvironmentData, HealthData, LockerData, SlotState, WifiData

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
RULE = AboveRule(threshold=1000, clear=950, for_s=60)


def verdict(value: float) -> Verdict:
    if value > RULE.threshold:
        return Verdict.BAD
    if value < RULE.clear:
        return Verdict.GOOD
    return Verdict.HOLD


@given(st.lists(st.floats(800, 1200), min_size=1, max_size=200))
def test_a_tracker_fires_only_after_for_s_and_resolves_only_below_clear(values: list[float]):
    """One reading every 10 s: firing needs 60 s above threshold, resolving a reading below
    the clear value; in between nothing changes, however the value wobbles."""
    tracker = Tracker("co2_ventilate", "", "warning")
    changes: list[tuple[int, str]] = []
    for i, value in enumerate(values):
        now = T0 + timedelta(seconds=10 * i)
        change = tracker.step(Finding("co2_ventilate", verdict(value), "", ""), RULE, now)
        if change:
            changes.append((i, change))
    kinds = [c for _, c in changes]
    assert kinds == ["fire", "resolve"] * (len(kinds) // 2) + ["fire"] * (len(kinds) % 2)
    for i, change in changes:
        if change == "fire":  # the last 7 readings (60 s) were all above the threshold
            assert i >= 6
            assert all(v > 1000 for v in values[i - 6 : i + 1])
        else:
            assert values[i] < 950


def test_wobbling_between_the_thresholds_keeps_one_alert():
    tracker = Tracker("co2_ventilate", "", "warning")
    series = [1100] * 7 + [990, 1010, 960, 1050, 999] * 20 + [900]
    changes = [
        tracker.step(
            Finding("co2_ventilate", verdict(v), "", ""), RULE, T0 + timedelta(seconds=10 * i)
        )
        for i, v in enumerate(series)
    ]
    assert [c for c in changes if c] == ["fire", "resolve"]


def test_an_offline_gateway_holds_its_other_alerts():
    room = RoomState("s", "a", report_interval_s=30)
    room.seen(T0)
    room.set_environment(EnvironmentData(co2_ppm=1500), T0, 3600)
    room.set_health(HealthData(uptime_s=1, outbox_depth=0, outbox_dropped=0), T0)
    rules = parse_central({}, "x", environ={}).alerts.rules
    now = T0 + timedelta(minutes=5)  # 10 report intervals of silence
    found = {f.rule: f.verdict for f in evaluate(room, rules, now)}
    assert found["gateway_offline"] is Verdict.BAD
    assert found["co2_ventilate"] is Verdict.HOLD
    assert found["sensor_stale"] is Verdict.HOLD


def test_overrides_merge_site_then_room_over_the_defaults():
    alerts = parse_central(
        {
            "alerts": {
                "rules": {"co2_ventilate": {"for_s": 30}},
                "override": [
                    {"site": "s", "room": "a", "rules": {"co2_ventilate": {"threshold": 1400}}},
                    {"site": "s", "report_interval_s": 60, "rules": {"co2_ventilate": {
                        "threshold": 1200, "clear": 1100}}},
                ],
            }
        },
        "central.toml",
        environ={},
    ).alerts  # fmt: skip
    a, b, other = (alerts.rules_for("s", r) for r in ("a", "b", "x"))
    assert (a.co2_ventilate.threshold, a.co2_ventilate.clear, a.co2_ventilate.for_s) == (
        1400,
        1100,
        30,
    )
    assert b.co2_ventilate.threshold == 1200
    assert alerts.rules_for("t", "x").co2_ventilate.threshold == 1000
    assert other.co2_critical.threshold == 2000
    assert alerts.interval_for("s", "a") == 60
    assert alerts.interval_for("t", "a") == 30


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            "[alerts.rules.co2_ventilate]\nthreshold = 900\nclear = 950\n",
            "alerts.rules.co2_ventilate: clear (950.0) must not be above threshold (900.0)",
        ),
        (
            "[alerts.rules.co2_ventilat]\nthreshold = 900\n",
            "alerts.rules.co2_ventilat: unknown key",
        ),
        (
            "[alerts.rules.temperature]\nfor_s = -1\n",
            "alerts.rules.temperature.for_s: Input should be greater than or equal to 0",
        ),
        (
            '[[alerts.override]]\nsite = "s"\nrules = {humidty = {low = 20}}\n',
            "alerts: override[0].rules.humidty: unknown rule",
        ),
        (
            '[[alerts.override]]\nsite = "s"\nrules = {humidity = {low = "dry"}}\n',
            "alerts: override[0].rules.humidity.low: Input should be a valid number",
        ),
        (
            '[[alerts.maintenance]]\nsite = "s"\nstart = 2026-11-23T10:00:00+01:00\n'
            "end = 2026-11-23T08:00:00+01:00\n",
            "alerts.maintenance.0: end must be after start",
        ),
        (
            '[[alerts.maintenance]]\nsite = "s"\nstart = 2026-11-23T08:00:00\n'
            "end = 2026-11-23T10:00:00\n",
            "alerts.maintenance.0: start and end need a UTC offset",
        ),
    ],
)
def test_bad_rule_config_names_file_and_field(tmp_path: Path, toml: str, expected: str):
    path = tmp_path / "central.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_central_config(path, environ={})
    assert f"{path}: {expected}" in str(err.value)
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert expected in done.stderr


def healthy_room() -> RoomState:
    room = RoomState("s", "a", report_interval_s=30)
    room.seen(T0)
    room.online = True
    room.set_environment(EnvironmentData(co2_ppm=600, temperature_c=21, humidity_pct=45), T0, 3600)
    room.wifi = WifiData(rssi_dbm=-55, loss_pct=0, dns_ms=20, portal_ok=True, ok=True)
    slots = [SlotState(slot="1", present=True, charging=True)]
    room.set_locker("tablets", LockerData(door_open=False, slots=slots), T0)
    room.set_health(HealthData(uptime_s=1, outbox_depth=0, outbox_dropped=0), T0)
    return room


def degrade_wifi(room: RoomState, now: datetime) -> None:
    room.wifi = WifiData(rssi_dbm=-81, loss_pct=0, dns_ms=20, portal_ok=True, ok=False)


def portal_fails(room: RoomState, now: datetime) -> None:
    room.wifi = WifiData(rssi_dbm=-50, loss_pct=0, dns_ms=20, portal_ok=False, ok=False)


def hot(room: RoomState, now: datetime) -> None:
    room.set_environment(EnvironmentData(co2_ppm=600, temperature_c=28.5), now, 3600)


def dry(room: RoomState, now: datetime) -> None:
    room.set_environment(EnvironmentData(co2_ppm=600, humidity_pct=18), now, 3600)


def sensor_silent(room: RoomState, now: datetime) -> None:
    room.seen(now)  # the gateway talks, the sensor does not


def stuck(room: RoomState, now: datetime) -> None:
    for minutes in range(4 * 60, -1, -5):  # four hours of 412 ppm, oldest first
        room.set_environment(EnvironmentData(co2_ppm=412), now - timedelta(minutes=minutes), 14400)
    room.seen(now)


def not_charging(room: RoomState, now: datetime) -> None:
    slots = [SlotState(slot="1", present=True, charging=False)]
    room.set_locker("tablets", LockerData(door_open=False, slots=slots), now - timedelta(hours=1))
    room.seen(now)


def outbox_full(room: RoomState, now: datetime) -> None:
    room.set_health(HealthData(uptime_s=9, outbox_depth=5000, outbox_dropped=0), now)


def outbox_drops(room: RoomState, now: datetime) -> None:
    room.set_health(HealthData(uptime_s=9, outbox_depth=40, outbox_dropped=31), now)


def outbox_lost(room: RoomState, now: datetime) -> None:
    """A newer agent healed a damaged outbox: the count since install rises."""
    faults = ["outbox_lost:12", "outbox_recovered:40"]
    room.set_health(HealthData(uptime_s=9, outbox_depth=0, outbox_dropped=0, faults=faults), now)


def loans_file_set_aside(room: RoomState, now: datetime) -> None:
    room.set_health(
        HealthData(uptime_s=9, outbox_depth=0, outbox_dropped=0, faults=["loans_file"]), now
    )


def disk_full(room: RoomState, now: datetime) -> None:
    faults = ["disk_full", "disk_unkept:3"]
    room.set_health(HealthData(uptime_s=9, outbox_depth=0, outbox_dropped=0, faults=faults), now)


def twin(room: RoomState, now: datetime) -> None:
    room.set_health(
        HealthData(uptime_s=9, outbox_depth=0, outbox_dropped=0, faults=["twin_gateway"]), now
    )


def test_outbox_lost_fires_on_new_losses_only_and_resolves_when_quiet():
    """The count is since install: an old loss reported again and again is no new alert."""
    rules = parse_central({}, "x", environ={}).alerts.rules
    room = healthy_room()
    later = T0 + timedelta(minutes=1)
    outbox_lost(room, later)

    def verdict(now: datetime) -> Verdict:
        (found,) = [f for f in evaluate(room, rules, now) if f.rule == "outbox_lost"]
        return found.verdict

    assert verdict(later) is Verdict.BAD
    quiet = later + timedelta(seconds=rules.outbox_lost.quiet_s + 1)
    room.seen(quiet)
    outbox_lost(room, quiet)  # the same 12 again
    assert verdict(quiet) is Verdict.GOOD


@pytest.mark.parametrize(
    ("rule", "break_it"),
    [
        ("outbox_lost", outbox_lost),
        ("loans_file_damaged", loans_file_set_aside),
        ("twin_gateway", twin),
        ("disk_full", disk_full),
        ("wifi_degraded", degrade_wifi),
        ("wifi_degraded", portal_fails),
        ("temperature", hot),
        ("humidity", dry),
        ("sensor_stale", sensor_silent),
        ("sensor_stuck", stuck),
        ("device_not_charging", not_charging),
        ("outbox_filling", outbox_full),
        ("outbox_dropping", outbox_drops),
    ],
)
def test_each_rule_sees_its_problem_and_nothing_else(rule: str, break_it):
    rules = parse_central({}, "x", environ={}).alerts.rules
    now = T0 + timedelta(minutes=1)
    assert all(f.verdict is not Verdict.BAD for f in evaluate(healthy_room(), rules, now))
    room = healthy_room()
    # the stale sensor needs three silent report intervals, the stuck one four flat hours
    later = now + {"sensor_stale": timedelta(minutes=10), "sensor_stuck": timedelta(hours=5)}.get(
        rule, timedelta(0)
    )
    break_it(room, later)
    bad = {f.rule for f in evaluate(room, rules, later) if f.verdict is Verdict.BAD}
    assert bad == {rule}
