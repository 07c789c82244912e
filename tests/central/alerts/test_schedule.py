"""Passes that look only at rooms that can have changed: time alone still fires on time, and
any sequence of messages and passes gives the same alerts as looking at every room."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.central.alerts.evaluation import Transition
from gateway.central.alerts.service import AlertService
from gateway.central.config import parse_central
from gateway.models import (
    EnvironmentData,
    EventData,
    HealthData,
    LockerData,
    SlotState,
    StatusData,
    make_envelope,
)

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
RULES = {
    "co2_ventilate": {"for_s": 60},
    "locker_door_open": {"after_s": 60},
    "device_not_charging": {"after_s": 300},
    "device_overdue": {"after_s": 30},
    "outbox_dropping": {"quiet_s": 200},
    "temperature": {"for_s": 0, "clear_for_s": 40},
}


def service(now: list[datetime], **alerts: Any) -> AlertService:
    cfg = parse_central(
        {"alerts": {"alertmanager_url": None, "rules": RULES} | alerts}, "x", environ={}
    )
    svc = AlertService(cfg, clock=lambda: now[0])
    svc._started = True
    return svc


def send(svc: AlertService, now: datetime, kind: str, data: Any, sub: str = "") -> None:
    env = make_envelope("s", "a", data, now, 1)
    topic = f"learnroom/v1/s/a/{kind}" + (f"/{sub}" if sub else "")
    svc.on_message(topic, env.model_dump_json().encode())


def keys(transitions: list[Transition]) -> list[str]:
    return sorted(key for _, key, _ in transitions)


def test_a_room_whose_only_change_is_time_passing_still_fires_on_time():
    now = [T0]
    svc = service(now)
    send(svc, T0, "status", StatusData(online=True))
    slots = [SlotState(slot="1", present=True, charging=False)]
    send(svc, T0, "lockers", LockerData(door_open=True, slots=slots), "tablets")
    send(svc, T0, "events", EventData(type="overdue", locker="tablets", slot="2", due=T0))
    assert svc.evaluate() == ([], []), "nothing has lasted yet"
    fired_at: dict[str, float] = {}
    looked_at = []
    for step in range(1, 80):  # a pass every 5 s for 395 s, and not one message
        now[0] = T0 + timedelta(seconds=5 * step)
        fired, resolved = svc.evaluate()
        looked_at.append(svc.last_pass.rooms)
        assert not resolved
        for key in keys(fired):
            fired_at[key] = 5 * step
    assert fired_at == {
        "device_overdue-tablets-2": 30,  # due + after_s
        "locker_door_open-tablets": 60,  # after_s
        # 3 report intervals of 30 s: silent once more than 90 s have passed
        "gateway_offline": 95,
        # not charging for 300 s; but the gateway is offline by then: its alerts hold
    }
    assert looked_at.count(0) > 60, "a room with nothing due is not looked at"


def test_bounds_that_run_while_the_gateway_talks_fire_on_time():
    """Status every 35 s keeps the gateway online; the environment sensor and the charger
    say nothing more: their rules' time bounds alone make the alerts."""
    now = [T0]
    svc = service(now)
    send(svc, T0, "environment", EnvironmentData(co2_ppm=600))
    slots = [SlotState(slot="1", present=True, charging=False)]
    send(svc, T0, "lockers", LockerData(door_open=False, slots=slots), "tablets")
    svc.evaluate()
    fired_at: dict[str, float] = {}
    for step in range(1, 80):
        now[0] = T0 + timedelta(seconds=5 * step)
        if step % 7 == 0:
            send(svc, now[0], "status", StatusData(online=True))
        for key in keys(svc.evaluate()[0]):
            fired_at[key] = 5 * step
    assert fired_at == {"sensor_stale": 95, "device_not_charging-tablets-1": 300}


def test_a_pending_alert_fires_and_a_resolving_one_resolves_without_new_messages():
    now = [T0]
    svc = service(now)
    send(svc, T0, "environment", EnvironmentData(co2_ppm=1500, temperature_c=30.0))
    fired, _ = svc.evaluate()
    assert keys(fired) == ["temperature"], "for_s 0: at once; CO2 is pending for 60 s"
    now[0] = T0 + timedelta(seconds=55)
    assert svc.evaluate() == ([], [])
    now[0] = T0 + timedelta(seconds=60)
    fired, _ = svc.evaluate()
    assert keys(fired) == ["co2_ventilate"]
    now[0] = T0 + timedelta(seconds=65)
    send(svc, now[0], "environment", EnvironmentData(co2_ppm=1500, temperature_c=21.0))
    assert svc.evaluate() == ([], []), "good, but clear_for_s is 40 s"
    now[0] = T0 + timedelta(seconds=100)
    assert svc.evaluate() == ([], [])
    now[0] = T0 + timedelta(seconds=105)
    _, resolved = svc.evaluate()
    assert keys(resolved) == ["temperature"]


def test_a_maintenance_window_opening_and_closing_is_a_change_for_its_rooms():
    now = [T0]
    window = {"site": "s", "start": T0 + timedelta(seconds=30), "end": T0 + timedelta(seconds=90)}
    svc = service(now, maintenance=[window], rules=RULES | {"co2_ventilate": {"for_s": 0}})
    send(svc, T0, "environment", EnvironmentData(co2_ppm=1500))
    assert keys(svc.evaluate()[0]) == ["co2_ventilate"]
    now[0] = T0 + timedelta(seconds=30)
    assert keys(svc.evaluate()[1]) == ["co2_ventilate"], "the window opens: it resolves"
    now[0] = T0 + timedelta(seconds=60)
    assert svc.evaluate() == ([], [])
    now[0] = T0 + timedelta(seconds=90)
    assert keys(svc.evaluate()[0]) == ["co2_ventilate"], "the window closes: it fires again"


# -- any script: the same alerts as a pass over every room -----------------------------------

Message = tuple[str, Any, str]
messages = st.one_of(
    st.builds(lambda on: ("status", StatusData(online=on), ""), st.booleans()),
    st.builds(
        lambda co2, t: ("environment", EnvironmentData(co2_ppm=co2, temperature_c=t), ""),
        st.sampled_from([None, 600.0, 980.0, 1200.0, 2500.0]),
        st.sampled_from([None, 21.0, 25.8, 30.0]),
    ),
    st.builds(
        lambda door, present, charging: (
            "lockers",
            LockerData(
                door_open=door, slots=[SlotState(slot="1", present=present, charging=charging)]
            ),
            "l1",
        ),
        st.booleans(),
        st.booleans(),
        st.sampled_from([None, True, False]),
    ),
    # an overdue loan's due time, relative to when the event is sent (see ``materialise``)
    st.builds(
        lambda typ, due_s: ("events", (typ, due_s), ""),
        st.sampled_from(["overdue", "return"]),
        st.sampled_from([None, -100.0, 10.0, 50.0, 400.0]),
    ),
    st.builds(
        lambda dropped: (
            "health",
            HealthData(uptime_s=1, outbox_depth=0, outbox_dropped=dropped),
            "",
        ),
        st.integers(0, 3),
    ),
)
steps = st.lists(
    st.tuples(
        st.lists(messages, max_size=3), st.sampled_from([0.0, 1.0, 5.0, 29.0, 61.0, 130.0, 700.0])
    ),
    min_size=1,
    max_size=40,
)


def materialise(kind: str, data: Any, now: datetime) -> Any:
    if kind != "events":
        return data
    typ, due_s = data
    due = None if due_s is None else now + timedelta(seconds=due_s)
    return EventData(type=typ, locker="l1", slot="1", due=due)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps, st.booleans())
def test_looking_only_at_rooms_that_can_have_changed_changes_no_alert(
    script: list[tuple[list[Message], float]], in_maintenance: bool
):
    now = [T0]
    window = {"site": "s", "start": T0 + timedelta(seconds=100), "end": T0 + timedelta(hours=1)}
    # a long report interval: fewer passes in which an offline gateway holds everything
    # and each time bound of its own length, shorter than the silence that makes it offline
    rules = RULES | {
        "sensor_stale": {"intervals": 1},
        "device_not_charging": {"after_s": 100},
        "outbox_dropping": {"quiet_s": 150},
        "outbox_lost": {"quiet_s": 150},
    }
    extra: dict[str, Any] = {"report_interval_s": 200.0, "rules": rules}
    if in_maintenance:
        extra["maintenance"] = [window]
    fewer, every = service(now, **extra), service(now, **extra)
    for batch, seconds in script:
        now[0] += timedelta(seconds=seconds)
        for kind, data, sub in batch:
            for svc in (fewer, every):
                send(svc, now[0], kind, materialise(kind, data, now[0]), sub)
        a, b = fewer.evaluate(), every.evaluate(every_room=True)
        assert (keys(a[0]), keys(a[1])) == (keys(b[0]), keys(b[1])), now[0] - T0
        for (_, ka, ta), (_, kb, tb) in zip(sorted(a[0]), sorted(b[0]), strict=True):
            assert (ka, ta.started, ta.en) == (kb, tb.started, tb.en)
