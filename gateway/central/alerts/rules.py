"""Alert rules: the room state they look at, and how they decide (settings: ``thresholds``).

Each rule looks at one room and returns a verdict per thing it watches (the room, a locker, a
slot): ``BAD``, ``GOOD`` or ``HOLD``. Two thresholds make hysteresis: a value must cross the
alarm threshold to turn bad and fall back past the clear threshold to turn good; in between
it holds, so a CO2 reading wobbling around 1000 ppm neither fires nor resolves again and
again. ``Tracker`` adds the durations: bad for ``for_s`` before firing, good for
``clear_for_s`` before resolving (Prometheus' ``for`` and ``keep_firing_for``).

Defaults follow DESIGN.md "Thresholds" (CO2 guide values of the Umweltbundesamt).
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, NamedTuple

from gateway.central.thresholds import (
    RULE_NAMES,
    AboveRule,
    AfterRule,
    DroppingRule,
    FaultRule,
    RangeRule,
    Rule,
    Rules,
    Severity,
    SilenceRule,
    StuckRule,
    WifiRule,
)
from gateway.models import EnvironmentData, HealthData, LockerData, WifiData


class Verdict(Enum):
    BAD = "bad"
    GOOD = "good"
    HOLD = "hold"


# -- what the service knows about a room ----------------------------------------------------


@dataclass
class RoomState:
    site: str
    room: str
    report_interval_s: float
    last_seen: datetime | None = None
    online: bool | None = None
    environment: EnvironmentData | None = None
    environment_at: datetime | None = None
    co2_window: deque[tuple[datetime, float]] = field(default_factory=deque)
    wifi: WifiData | None = None
    lockers: dict[str, LockerData] = field(default_factory=dict)
    door_open_since: dict[str, datetime] = field(default_factory=dict)
    not_charging_since: dict[tuple[str, str], datetime] = field(default_factory=dict)
    #: (locker, slot) -> due time of a loan reported overdue and not yet returned
    overdue: dict[tuple[str, str], datetime | None] = field(default_factory=dict)
    health: HealthData | None = None
    dropped_at: datetime | None = None
    #: when the gateway last reported more readings lost with a damaged outbox
    lost_at: datetime | None = None

    def seen(self, when: datetime) -> None:
        if self.last_seen is None or when > self.last_seen:
            self.last_seen = when

    def set_environment(self, data: EnvironmentData, when: datetime, window_s: float) -> None:
        self.environment = data
        if data.co2_ppm is not None or data.temperature_c is not None:
            self.environment_at = when
        if data.co2_ppm is not None:
            self.co2_window.append((when, data.co2_ppm))
            while self.co2_window and self.co2_window[0][0] < when - timedelta(seconds=window_s):
                self.co2_window.popleft()

    def set_locker(self, locker: str, data: LockerData, when: datetime) -> None:
        self.lockers[locker] = data
        if data.door_open:
            self.door_open_since.setdefault(locker, when)
        else:
            self.door_open_since.pop(locker, None)
        for slot in data.slots:
            key = (locker, slot.slot)
            if slot.present and slot.charging is False:
                self.not_charging_since.setdefault(key, when)
            else:
                self.not_charging_since.pop(key, None)
            if slot.present:
                self.overdue.pop(key, None)  # back in its slot: no longer overdue

    def set_health(self, data: HealthData, when: datetime) -> None:
        if self.health is not None and data.outbox_dropped > self.health.outbox_dropped:
            self.dropped_at = when
        if self.health is not None and _counted(data, "outbox_lost") > _counted(
            self.health, "outbox_lost"
        ):
            self.lost_at = when
        self.health = data


class Finding(NamedTuple):
    """One rule's verdict on one thing; ``target`` names it (a locker, a slot) or is empty.
    A tuple: tens of thousands are made per pass, and a frozen dataclass costs twice as much."""

    rule: str
    verdict: Verdict
    en: str
    de: str
    target: str = ""


Check = Callable[[RoomState, Any, datetime], Iterator[Finding]]


def _above(rule: str, value: float | None, s: AboveRule, en: str, de: str) -> Iterator[Finding]:
    if value is None:
        yield Finding(rule, Verdict.HOLD, en, de)
    elif value > s.threshold:
        yield Finding(rule, Verdict.BAD, en, de)
    elif value < s.clear:
        yield Finding(rule, Verdict.GOOD, en, de)
    else:
        yield Finding(rule, Verdict.HOLD, en, de)


def check_offline(room: RoomState, s: SilenceRule, now: datetime) -> Iterator[Finding]:
    if room.last_seen is None and room.online is None:
        verdict = Verdict.HOLD  # known only from a retained alert: nothing to judge yet
    else:
        silent = room.last_seen is None or (now - room.last_seen).total_seconds() > (
            s.intervals * room.report_interval_s
        )
        verdict = Verdict.BAD if room.online is False or silent else Verdict.GOOD
    yield Finding(
        "gateway_offline",
        verdict,
        "Gateway offline: no data from this room",
        "Gateway offline: keine Daten aus diesem Raum",
    )


def check_wifi(room: RoomState, s: WifiRule, now: datetime) -> Iterator[Finding]:
    w = room.wifi
    if w is None:
        return
    bad = (
        (w.rssi_dbm is not None and w.rssi_dbm < s.rssi_below_dbm)
        or (w.loss_pct is not None and w.loss_pct > s.loss_above_pct)
        or (w.dns_ms is not None and w.dns_ms > s.dns_above_ms)
        or (s.portal and w.portal_ok is False)
    )
    good = (
        (w.rssi_dbm is None or w.rssi_dbm > s.rssi_clear_dbm)
        and (w.loss_pct is None or w.loss_pct < s.loss_clear_pct)
        and (w.dns_ms is None or w.dns_ms < s.dns_clear_ms)
        and not (s.portal and w.portal_ok is False)
    )
    what = (
        f"RSSI {w.rssi_dbm} dBm, loss {w.loss_pct} %, DNS {w.dns_ms} ms, "
        f"portal {'ok' if w.portal_ok is not False else 'failing'}"
    )
    verdict = Verdict.BAD if bad else (Verdict.GOOD if good else Verdict.HOLD)
    yield Finding("wifi_degraded", verdict, f"Wi-Fi degraded: {what}", f"WLAN gestört: {what}")


@functools.lru_cache(maxsize=8192)
def _co2_texts(rule: str, co2: float | None) -> tuple[str, str]:
    """Messages depend on the value only: made once per value, not per room and pass."""
    if rule == "co2_ventilate":
        return (
            f"CO2 {co2:.0f} ppm: please ventilate" if co2 else "CO2 high: please ventilate",
            f"CO2 {co2:.0f} ppm: bitte lüften" if co2 else "CO2 hoch: bitte lüften",
        )
    return (
        f"CO2 {co2:.0f} ppm: air quality unacceptable, ventilate now" if co2 else "CO2 critical",
        f"CO2 {co2:.0f} ppm: Luftqualität inakzeptabel, sofort lüften" if co2 else "CO2 kritisch",
    )


def check_co2_ventilate(room: RoomState, s: AboveRule, now: datetime) -> Iterator[Finding]:
    co2 = room.environment.co2_ppm if room.environment else None
    yield from _above("co2_ventilate", co2, s, *_co2_texts("co2_ventilate", co2))


def check_co2_critical(room: RoomState, s: AboveRule, now: datetime) -> Iterator[Finding]:
    co2 = room.environment.co2_ppm if room.environment else None
    yield from _above("co2_critical", co2, s, *_co2_texts("co2_critical", co2))


@functools.lru_cache(maxsize=8192)
def _range_texts(
    value: float, low: float, high: float, unit: str, en: str, de: str
) -> tuple[str, str]:
    limits = f"{low:g}-{high:g} {unit}"
    return (
        f"{en} {value:.1f} {unit} outside {limits}",
        f"{de} {value:.1f} {unit} außerhalb {limits}",
    )


def _range(
    rule: str, value: float | None, s: RangeRule, unit: str, en: str, de: str
) -> Iterator[Finding]:
    if value is None:
        yield Finding(rule, Verdict.HOLD, en, de)
        return
    if value < s.low or value > s.high:
        verdict = Verdict.BAD
    elif s.clear_low <= value <= s.clear_high:
        verdict = Verdict.GOOD
    else:
        verdict = Verdict.HOLD
    yield Finding(rule, verdict, *_range_texts(value, s.low, s.high, unit, en, de))


def check_temperature(room: RoomState, s: RangeRule, now: datetime) -> Iterator[Finding]:
    value = room.environment.temperature_c if room.environment else None
    yield from _range("temperature", value, s, "°C", "Temperature", "Temperatur")


def check_humidity(room: RoomState, s: RangeRule, now: datetime) -> Iterator[Finding]:
    value = room.environment.humidity_pct if room.environment else None
    yield from _range("humidity", value, s, "%", "Humidity", "Luftfeuchte")


@functools.lru_cache(maxsize=8192)
def _door_texts(locker: str, after_s: float) -> tuple[str, str]:
    return (
        f"Locker {locker}: door open for more than {after_s:.0f} s",
        f"Schließfach {locker}: Tür länger als {after_s:.0f} s offen",
    )


def check_door(room: RoomState, s: AfterRule, now: datetime) -> Iterator[Finding]:
    for locker in room.lockers:
        since = room.door_open_since.get(locker)
        bad = since is not None and (now - since).total_seconds() >= s.after_s
        en, de = _door_texts(locker, s.after_s)
        yield Finding("locker_door_open", Verdict.BAD if bad else Verdict.GOOD, en, de, locker)


def check_overdue(room: RoomState, s: AfterRule, now: datetime) -> Iterator[Finding]:
    for (locker, slot), due in room.overdue.items():
        late = due is None or (now - due).total_seconds() >= s.after_s
        when = due.strftime("%Y-%m-%d %H:%M UTC") if due else "?"
        yield Finding(
            "device_overdue",
            Verdict.BAD if late else Verdict.HOLD,
            f"Device {locker}/{slot} not returned (due {when})",
            f"Gerät {locker}/{slot} nicht zurückgegeben (fällig {when})",
            target=f"{locker}/{slot}",
        )


@functools.lru_cache(maxsize=65536)
def _slot_texts(locker: str, slot: str) -> tuple[str, str, str]:
    """A slot's messages and target: the same for every pass, made once (8 slots a room)."""
    return (
        f"Device in {locker}/{slot} is not charging",
        f"Gerät in {locker}/{slot} lädt nicht",
        f"{locker}/{slot}",
    )


def check_not_charging(room: RoomState, s: AfterRule, now: datetime) -> Iterator[Finding]:
    after, since_of = s.after_s, room.not_charging_since
    for locker, data in room.lockers.items():
        for slot in data.slots:
            since = since_of.get((locker, slot.slot))
            bad = since is not None and (now - since).total_seconds() >= after
            en, de, target = _slot_texts(locker, slot.slot)
            yield Finding(
                "device_not_charging", Verdict.BAD if bad else Verdict.GOOD, en, de, target
            )


def check_stale(room: RoomState, s: SilenceRule, now: datetime) -> Iterator[Finding]:
    if room.environment_at is None or room.online is False:
        return  # never had a sensor, or the whole gateway is down (its own alert)
    silent = (now - room.environment_at).total_seconds() > s.intervals * room.report_interval_s
    yield Finding(
        "sensor_stale",
        Verdict.BAD if silent else Verdict.GOOD,
        "Environment sensor sends no readings",
        "Umweltsensor liefert keine Messwerte",
    )


def check_stuck(room: RoomState, s: StuckRule, now: datetime) -> Iterator[Finding]:
    window = room.co2_window
    if len(window) < 2:
        return
    span = (window[-1][0] - window[0][0]).total_seconds()
    values = [v for _, v in window]
    flat = max(values) - min(values) <= s.tolerance_ppm
    if flat and span >= s.window_s * 0.9:
        verdict = Verdict.BAD
    elif not flat:
        verdict = Verdict.GOOD
    else:
        verdict = Verdict.HOLD
    hours = s.window_s / 3600
    yield Finding(
        "sensor_stuck",
        verdict,
        f"CO2 sensor reads the same value for {hours:g} h: calibration suspect",
        f"CO2-Sensor zeigt seit {hours:g} h denselben Wert: Kalibrierung prüfen",
    )


def check_outbox_filling(room: RoomState, s: AboveRule, now: datetime) -> Iterator[Finding]:
    depth = room.health.outbox_depth if room.health else None
    yield from _above(
        "outbox_filling",
        depth,
        s,
        f"Gateway outbox holds {depth} unsent readings",
        f"Gateway-Puffer hält {depth} ungesendete Messwerte",
    )


def check_outbox_dropping(room: RoomState, s: DroppingRule, now: datetime) -> Iterator[Finding]:
    if room.health is None:
        return
    recent = room.dropped_at is not None and (now - room.dropped_at).total_seconds() < s.quiet_s
    yield Finding(
        "outbox_dropping",
        Verdict.BAD if recent else Verdict.GOOD,
        f"Gateway outbox full: {room.health.outbox_dropped} readings dropped",
        f"Gateway-Puffer voll: {room.health.outbox_dropped} Messwerte verworfen",
    )


def _counted(health: HealthData, fault: str) -> int:
    """N of a ``fault:N`` entry in ``health.faults`` (a count since install), 0 without one."""
    for entry in health.faults:
        name, _, count = entry.partition(":")
        if name == fault and count.isdigit():
            return int(count)
    return 0


def _faulted(room: RoomState, fault: str) -> Verdict:
    if room.health is None:
        return Verdict.HOLD
    listed = any(f == fault or f.startswith(fault + ":") for f in room.health.faults)
    return Verdict.BAD if listed else Verdict.GOOD


def check_outbox_lost(room: RoomState, s: DroppingRule, now: datetime) -> Iterator[Finding]:
    if room.health is None:
        return
    recent = room.lost_at is not None and (now - room.lost_at).total_seconds() < s.quiet_s
    lost = _counted(room.health, "outbox_lost")
    yield Finding(
        "outbox_lost",
        Verdict.BAD if recent else Verdict.GOOD,
        f"Gateway outbox was damaged: {lost} readings lost since install",
        f"Gateway-Puffer war beschädigt: {lost} Messwerte seit der Installation verloren",
    )


def _fault_check(rule: str, fault: str, en: str, de: str) -> Check:
    """The check of a rule that fires while the gateway's ``health.faults`` lists ``fault``."""

    def check(room: RoomState, s: FaultRule, now: datetime) -> Iterator[Finding]:
        yield Finding(rule, _faulted(room, fault), en, de)

    return check


check_loans_file = _fault_check(
    "loans_file_damaged",
    "loans_file",
    "Lockers' loans file was unreadable and set aside: check the lent devices",
    "Ausleihdatei der Schließfächer war unlesbar und wurde beiseitegelegt: Ausleihen prüfen",
)
check_twin = _fault_check(
    "twin_gateway",
    "twin_gateway",
    "Another gateway uses this room's identity (cloned SD card or copied config?)",
    "Ein zweites Gateway nutzt die Identität dieses Raums (Karte oder Konfiguration kopiert?)",
)
check_disk_full = _fault_check(
    "disk_full",
    "disk_full",
    "Gateway disk full: readings are sent live but none kept for an outage",
    "Gateway-Speicher voll: Messwerte gehen live raus, für Ausfälle wird nichts gepuffert",
)


CHECKS: dict[str, Check] = {
    "gateway_offline": check_offline,
    "wifi_degraded": check_wifi,
    "co2_ventilate": check_co2_ventilate,
    "co2_critical": check_co2_critical,
    "temperature": check_temperature,
    "humidity": check_humidity,
    "locker_door_open": check_door,
    "device_overdue": check_overdue,
    "device_not_charging": check_not_charging,
    "sensor_stale": check_stale,
    "sensor_stuck": check_stuck,
    "outbox_filling": check_outbox_filling,
    "outbox_dropping": check_outbox_dropping,
    "outbox_lost": check_outbox_lost,
    "loans_file_damaged": check_loans_file,
    "twin_gateway": check_twin,
    "disk_full": check_disk_full,
}
assert set(CHECKS) == set(RULE_NAMES)  # noqa: S101 - a rule without a check is a bug


def _enabled(rules: Rules) -> list[tuple[str, Check, Any]]:
    """The enabled rules' checks with their settings, made once per ``Rules`` (a few distinct
    ones: defaults, and one per distinct set of overrides)."""
    cached = _ENABLED.get(id(rules))
    if cached is None or cached[0] is not rules:
        checks = [(n, c, getattr(rules, n)) for n, c in CHECKS.items()]
        cached = _ENABLED[id(rules)] = (rules, [t for t in checks if t[2].enabled])
        if len(_ENABLED) > 4096:  # configs made and dropped again and again (tests)
            _ENABLED.clear()
            _ENABLED[id(rules)] = cached
    return cached[1]


_ENABLED: dict[int, tuple[Rules, list[tuple[str, Check, Any]]]] = {}


def evaluate(room: RoomState, rules: Rules, now: datetime) -> Iterator[Finding]:
    """Every enabled rule's findings for one room."""
    offline = False
    for name, check, settings in _enabled(rules):
        for found in check(room, settings, now):
            if name == "gateway_offline":
                offline = found.verdict is Verdict.BAD
            elif offline:
                # stale data from a dead gateway says nothing new: hold every other alert
                yield found._replace(verdict=Verdict.HOLD)
                continue
            yield found


# -- durations ------------------------------------------------------------------------------


@dataclass
class Tracker:
    """One alert instance through pending, firing and resolving."""

    rule: str
    target: str
    severity: Severity
    firing_since: datetime | None = None
    #: when the last firing began; kept after it resolves, for the resolution's startsAt
    started: datetime | None = None
    bad_since: datetime | None = None
    good_since: datetime | None = None
    en: str = ""
    de: str = ""

    @property
    def firing(self) -> bool:
        return self.firing_since is not None

    def step(self, finding: Finding, settings: Rule, now: datetime) -> str | None:
        """Feed one verdict; returns "fire" or "resolve" when the alert changes."""
        self.severity = settings.severity
        if finding.verdict is Verdict.BAD:
            self.en, self.de = finding.en, finding.de
            self.good_since = None
            if self.bad_since is None:
                self.bad_since = now
            if not self.firing and (now - self.bad_since).total_seconds() >= settings.for_s:
                # milliseconds, as on the wire: a restarted service resumes the same instant
                since = self.bad_since
                self.firing_since = since.replace(microsecond=since.microsecond // 1000 * 1000)
                self.started = self.firing_since
                return "fire"
        elif finding.verdict is Verdict.GOOD:
            self.bad_since = None
            if self.firing:
                if self.good_since is None:
                    self.good_since = now
                if (now - self.good_since).total_seconds() >= settings.clear_for_s:
                    self.firing_since = None
                    self.good_since = None
                    return "resolve"
        elif not self.firing:
            self.bad_since = None  # between the thresholds: a pending alert starts over
        return None
