"""When a room has to be evaluated again although nothing arrived from it.

Evaluating every room at every pass costs about 80 µs a room (3 000 rooms: a quarter of a
second on the event loop every 5 s), and almost all of it repeats the last pass. What a rule
says about a room changes only when the room's state changes (a message: the service marks
the room) or when time alone crosses a bound: silence (``gateway_offline``, ``sensor_stale``),
a door open, a device not charging or overdue past ``after_s``, drops and losses aging past
``quiet_s``, a pending alert reaching ``for_s``, a resolving one reaching ``clear_for_s``, a
maintenance window opening or closing (the service watches those). ``next_due`` is the
earliest such bound after a pass; between passes and that bound a pass would change nothing.

Each bound mirrors its check in ``rules.py`` with the same comparison, and is kept only while
that comparison has not flipped yet, so a bound a few microseconds early (float seconds in a
``timedelta``) costs one more pass, never a missed one. ``tests/central/alerts/test_schedule``
holds the two to each other.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime, timedelta

from gateway.central.alerts.rules import RoomState, Tracker
from gateway.central.thresholds import Rules

#: Bounds are taken this much early: one more pass rather than one too few.
_EARLY = timedelta(milliseconds=1)


def next_due(
    room: RoomState, rules: Rules, trackers: Iterable[Tracker], now: datetime
) -> datetime | None:
    """The earliest time after ``now`` at which time alone may change a verdict or a tracker
    of ``room``; None when only a message can."""
    bounds: list[datetime] = []

    def until(since: datetime, seconds: float, passed: bool) -> None:
        if not passed:
            with contextlib.suppress(OverflowError):  # past the year 9999: never reached
                bounds.append(since + timedelta(seconds=seconds) - _EARLY)

    limit = room.report_interval_s
    if room.last_seen is not None and room.online is not False:  # check_offline
        silence = rules.gateway_offline.intervals * limit
        until(room.last_seen, silence, (now - room.last_seen).total_seconds() > silence)
    if room.environment_at is not None and room.online is not False:  # check_stale
        silence = rules.sensor_stale.intervals * limit
        seconds = (now - room.environment_at).total_seconds()
        until(room.environment_at, silence, seconds > silence)
    after = rules.locker_door_open.after_s
    for since in room.door_open_since.values():  # check_door
        until(since, after, (now - since).total_seconds() >= after)
    after = rules.device_not_charging.after_s
    for since in room.not_charging_since.values():  # check_not_charging
        until(since, after, (now - since).total_seconds() >= after)
    after = rules.device_overdue.after_s
    for due in room.overdue.values():  # check_overdue
        if due is not None:
            until(due, after, (now - due).total_seconds() >= after)
    for at, rule in ((room.dropped_at, rules.outbox_dropping), (room.lost_at, rules.outbox_lost)):
        if at is not None:  # check_outbox_dropping, check_outbox_lost
            until(at, rule.quiet_s, not (now - at).total_seconds() < rule.quiet_s)
    for tracker in trackers:  # Tracker.step: pending until for_s, resolving until clear_for_s
        settings = getattr(rules, tracker.rule)
        if not tracker.firing and tracker.bad_since is not None:
            until(tracker.bad_since, settings.for_s, passed=False)
        elif tracker.firing and tracker.good_since is not None:
            until(tracker.good_since, settings.clear_for_s, passed=False)
    return min(bounds) if bounds else None
