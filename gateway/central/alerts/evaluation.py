"""Each room's state from MQTT, and the passes that turn it into alerts firing and resolving.

A pass looks only at the rooms whose verdicts can have changed (``schedule``): those a message
arrived for, those with a time bound due, and every room when a maintenance window opens or
closes. On the service's event loop a pass gives way to message handling every
``SLICE_S``, so 3 000 rooms changing at once delay a message by one slice, not by the pass.

Nothing that arrives can raise here: ``validate.check`` refuses what the models refuse
(timestamps without a zone or outside 2000-2099, ``since`` ahead of the clock) with a counted
reason, and the retained alert topics, which are the service's memory across restarts, are
cleared when they cannot be read, so a bad one does not come back at every start.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.central.alerts.rules import CHECKS, Finding, RoomState, Tracker, Verdict, evaluate
from gateway.central.alerts.schedule import next_due
from gateway.central.config import CentralConfig
from gateway.central.thresholds import Rules
from gateway.central.validate import Accepted, Window, check
from gateway.models import (
    AlertData,
    EnvironmentData,
    EventData,
    HealthData,
    LockerData,
    StatusData,
    WifiData,
)

_LOGGER = logging.getLogger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
#: Longest stretch a pass keeps the event loop before letting messages in.
SLICE_S = 0.02
#: A firing alert lives in its retained topic for as long as it fires: weeks are normal.
_ALERT_MAX_AGE = timedelta(days=3650)

Transition = tuple["Room", str, Tracker]


@functools.lru_cache(maxsize=65536)
def alert_key(rule: str, target: str) -> str:
    """The topic level of an alert: the rule, and what it is about when there is more than one."""
    if not target:
        return rule
    return f"{rule}-{_UNSAFE.sub('-', target)}"[:63]


@dataclass
class Room:
    state: RoomState
    trackers: dict[str, Tracker] = field(default_factory=dict)
    #: something arrived since the last pass over this room
    dirty: bool = True
    #: when time alone may change a verdict (``schedule.next_due``); None: only a message
    due_at: datetime | None = None


@dataclass(frozen=True)
class PassStats:
    rooms: int
    took_s: float
    #: the longest the pass held the event loop at a stretch
    longest_slice_s: float


class Evaluator:
    """Rooms, trackers and passes; ``AlertService`` adds delivery and the loops."""

    def __init__(
        self,
        config: CentralConfig,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.config = config
        self.settings = config.alerts
        self.clock = clock
        self.prefix = config.mqtt.prefix
        self.window = config.accept.window()
        ahead = self.window.ahead if self.window else timedelta(days=36500)
        self._alert_window = Window(max_age=_ALERT_MAX_AGE, ahead=ahead)
        self.rooms: dict[tuple[str, str], Room] = {}
        self._started = False
        #: retained topics to set or clear, by topic (the newest wins); sent by the service
        self._unpublished: dict[str, bytes] = {}
        bounds = {t for m in self.settings.maintenance for t in (m.start, m.end)}
        self._maintenance_bounds = sorted(bounds)
        self._last_pass: datetime | None = None
        self.last_pass = PassStats(0, 0.0, 0.0)
        self.registry = registry or CollectorRegistry()
        self.firing_gauge = Gauge(
            "learnroom_alerts_firing",
            "alerts firing now",
            ["rule", "severity"],
            registry=self.registry,
        )
        self.transitions = Counter(
            "learnroom_alerts_transitions",
            "alerts that started firing or resolved",
            ["rule", "change"],
            registry=self.registry,
        )
        self.refused = Counter(
            "learnroom_alerts_messages_refused",
            "messages refused, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.rooms_evaluated = Gauge(
            "learnroom_alerts_rooms_evaluated",
            "rooms the last pass looked at",
            registry=self.registry,
        )

    # -- state from MQTT -------------------------------------------------------------------

    def room(self, site: str, room: str) -> Room:
        key = (site, room)
        if key not in self.rooms:
            interval = self.settings.interval_for(site, room)
            self.rooms[key] = Room(RoomState(site, room, interval))
        return self.rooms[key]

    def on_message(self, topic: str, payload: bytes, *, retained: bool = False) -> None:
        alert_topic = self._is_alert_topic(topic)
        window = self._alert_window if alert_topic else self.window
        result = check(topic, payload, self.prefix, now=self.clock(), window=window)
        if not isinstance(result, Accepted):
            reason = getattr(result, "reason", None)
            if reason is not None:
                self.refused.labels(reason).inc()  # the ingest logs the detail
                if alert_topic and retained and not self._started and payload:
                    # our own memory, unreadable: clear it rather than meet it at every start
                    _LOGGER.warning("clearing unreadable retained alert %s (%s)", topic, reason)
                    self._unpublished[topic] = b""
            return
        env, sub = result.envelope, result.topic.sub
        now = self.clock()
        if env.kind == "alerts":
            if not self._started:
                self._resume(env.site, env.room, sub or env.data.rule, env.data, env.ts)
            return
        room = self.room(env.site, env.room)
        room.dirty = True
        state = room.state
        # durations run on arrival time (a Pi without a real-time clock may be off); a
        # retained copy handed out at subscribe time is as old as its reading
        at = min(env.ts, now) if retained else now
        state.seen(at)
        data = env.data
        if isinstance(data, StatusData):
            state.online = data.online
        elif isinstance(data, EnvironmentData):
            window_s = self.settings.rules_for(env.site, env.room).sensor_stuck.window_s
            state.set_environment(data, at, window_s)
        elif isinstance(data, WifiData):
            state.wifi = data
        elif isinstance(data, LockerData) and sub is not None:
            state.set_locker(sub, data, at)
        elif isinstance(data, HealthData):
            state.set_health(data, at)
        elif isinstance(data, EventData) and data.locker and data.slot:
            slot = (data.locker, data.slot)
            if data.type == "overdue":
                state.overdue[slot] = data.due
            elif data.type == "return":
                state.overdue.pop(slot, None)
        if env.kind != "status" and state.online is False:
            state.online = True  # a reading after the Last Will: it is back

    def _is_alert_topic(self, topic: str) -> bool:
        """``{prefix}/<site>/<room>/alerts/...``, by its levels (a room may be called alerts)."""
        levels = topic.removeprefix(self.prefix + "/").split("/", 3)
        return topic.startswith(self.prefix + "/") and len(levels) >= 3 and levels[2] == "alerts"

    def _resume(self, site: str, room: str, key: str, data: AlertData, ts: datetime) -> None:
        """A retained alert from before a restart: carry on firing with its ``startsAt``,
        which is never after the message itself or now (an absurd ``since`` would keep the
        alert open in Alertmanager past its resolution)."""
        if data.rule not in CHECKS or not data.firing:
            return
        since = min(data.since or ts, ts, self.clock())
        tracker = Tracker(
            data.rule,
            data.target or "",
            data.severity,
            firing_since=since,
            started=since,
            bad_since=since,
            en=data.message,
            de=data.message_de or data.message,
        )
        target = self.room(site, room)
        target.dirty = True
        if key not in target.trackers:
            self.firing_gauge.labels(data.rule, data.severity).inc()
        target.trackers[key] = tracker
        _LOGGER.info("resuming %s/%s %s, firing since %s", site, room, key, since)

    # -- evaluation ------------------------------------------------------------------------

    def due_rooms(self, now: datetime, *, every_room: bool = False) -> list[Room]:
        """The rooms whose verdicts may have changed since the last pass."""
        last, self._last_pass = self._last_pass, now
        if last is None or any(last < b <= now for b in self._maintenance_bounds):
            every_room = True  # a window opened or closed (or the first pass)
        if every_room:
            return list(self.rooms.values())
        return [
            r for r in self.rooms.values() if r.dirty or (r.due_at is not None and r.due_at <= now)
        ]

    def evaluate(self, *, every_room: bool = False) -> tuple[list[Transition], list[Transition]]:
        """One pass, all at once; returns the alerts that fired and that resolved."""
        now = self.clock()
        fired: list[Transition] = []
        resolved: list[Transition] = []
        start = time.perf_counter()
        rooms = self.due_rooms(now, every_room=every_room)
        for room in rooms:
            self._evaluate_room(room, now, fired, resolved)
        took = time.perf_counter() - start
        self._passed(len(rooms), took, took)
        return fired, resolved

    async def evaluate_yielding(self) -> tuple[list[Transition], list[Transition]]:
        """One pass that lets message handling in every ``SLICE_S``. A message for a room
        already done marks it for the next pass; one for a room still to come is seen now."""
        now = self.clock()
        fired: list[Transition] = []
        resolved: list[Transition] = []
        start = slice_start = time.perf_counter()
        longest = 0.0
        rooms = self.due_rooms(now)
        for i, room in enumerate(rooms):
            self._evaluate_room(room, now, fired, resolved)
            if i % 16 == 15 and time.perf_counter() - slice_start > SLICE_S:
                longest = max(longest, time.perf_counter() - slice_start)
                await asyncio.sleep(0)
                slice_start = time.perf_counter()
        longest = max(longest, time.perf_counter() - slice_start)
        self._passed(len(rooms), time.perf_counter() - start, longest)
        return fired, resolved

    def _passed(self, rooms: int, took: float, longest: float) -> None:
        self.last_pass = PassStats(rooms, took, longest)
        self.rooms_evaluated.set(rooms)

    def _evaluate_room(
        self, room: Room, now: datetime, fired: list[Transition], resolved: list[Transition]
    ) -> None:
        room.dirty = False
        state = room.state
        rules = self.settings.rules_for(state.site, state.room)
        quiet = bool(self._maintenance_bounds) and self.settings.in_maintenance(
            state.site, state.room, now
        )
        trackers = room.trackers
        seen: set[str] = set()
        for finding in evaluate(state, rules, now):
            verdict = Verdict.GOOD if quiet else finding.verdict
            if verdict is not Verdict.BAD:
                if not trackers:
                    continue  # nothing pending or firing here, nothing to start: the common case
                key = alert_key(finding.rule, finding.target) if finding.target else finding.rule
                if key not in trackers:
                    continue  # nothing to track
            else:
                key = alert_key(finding.rule, finding.target)
            seen.add(key)
            self._step(room, rules, key, finding, verdict, now, fired, resolved)
        for key, tracker in list(trackers.items()):
            if key not in seen and tracker.firing:
                # the thing it was about is gone (a locker removed, a rule disabled)
                gone = Finding(tracker.rule, Verdict.GOOD, tracker.en, tracker.de)
                self._step(room, rules, key, gone, Verdict.GOOD, now, fired, resolved)
        room.due_at = next_due(state, rules, trackers.values(), now)

    def _step(
        self,
        room: Room,
        rules: Rules,
        key: str,
        finding: Finding,
        verdict: Verdict,
        now: datetime,
        fired: list[Transition],
        resolved: list[Transition],
    ) -> None:
        settings: Any = getattr(rules, finding.rule)
        tracker = room.trackers.get(key)
        if tracker is None:
            if verdict is not Verdict.BAD:
                return  # nothing to track
            tracker = Tracker(finding.rule, finding.target, settings.severity)
            room.trackers[key] = tracker
        if verdict is not finding.verdict:
            finding = Finding(finding.rule, verdict, finding.en, finding.de, finding.target)
        change = tracker.step(finding, settings, now)
        if change == "fire":
            fired.append((room, key, tracker))
        elif change == "resolve":
            resolved.append((room, key, tracker))
            del room.trackers[key]
        elif not tracker.firing and tracker.bad_since is None:
            del room.trackers[key]  # back to nothing pending
