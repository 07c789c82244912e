"""Device lockers: slots, doors, loans, badges.

Per bank a door switch, per slot a presence switch and optionally a charging input. A slot
going empty is a checkout, refilled a return. The borrower is the pseudonym of the last badge
accepted at the reader shortly before (see ``badge.py``); the clear ID never leaves
``_on_badge``. Open loans are kept in a small JSON file so a restart forgets no due time.
A file that is not a valid loans document (a power cut, a hand edit) is moved aside and
reported as the ``loans_file`` fault, never a crash loop: slots found empty at start become
loans again with a fresh due time.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.agent.config import LockerConfig, LockersSection, RoomSection
from gateway.agent.sources.badge import BadgeReader, pseudonymise
from gateway.agent.sources.base import Sink
from gateway.agent.state import move_file_aside
from gateway.clock import Clock
from gateway.models import EventData, LockerData, SlotState

_LOGGER = logging.getLogger(__name__)

#: A checkout this soon after an accepted badge is that badge's loan.
BADGE_ATTRIBUTION_S = 300.0


@dataclass
class Loan:
    borrower: str | None
    due: str  # ISO 8601
    overdue_reported: bool = False


def parse_loans(raw: object) -> dict[str, Loan]:
    """The loans document, or ValueError saying what is wrong with it."""
    if not isinstance(raw, dict):
        # a document of the wrong shape is bad data, as broken JSON is: one error for both
        raise ValueError(f"expected an object of loans, found {type(raw).__name__}")  # noqa: TRY004
    loans = {}
    for key, value in raw.items():
        if not isinstance(value, dict) or "/" not in key:
            raise ValueError(f"loan {key!r} is not a locker/slot with an object")
        borrower, due, reported = (
            value.get("borrower"),
            value.get("due"),
            value.get("overdue_reported", False),
        )
        if set(value) - {"borrower", "due", "overdue_reported"}:
            raise ValueError(f"loan {key!r} has unknown fields")
        if not (borrower is None or isinstance(borrower, str)) or not isinstance(reported, bool):
            raise ValueError(f"loan {key!r} has a bad borrower or overdue flag")
        if not isinstance(due, str) or datetime.fromisoformat(due).tzinfo is None:
            raise ValueError(f"loan {key!r}: due {due!r} is not a time with a zone")
        loans[key] = Loan(borrower, due, reported)
    return loans


@dataclass
class _Bank:
    config: LockerConfig
    door: Any
    relay: Any
    present: dict[str, Any]
    charging: dict[str, Any]

    def data(self) -> LockerData:
        return LockerData(
            # reed switches close (read active) while the door is shut
            door_open=not self.door.is_active,
            slots=[
                SlotState(
                    slot=s.slot,
                    present=bool(self.present[s.slot].is_active),
                    charging=bool(self.charging[s.slot].is_active)
                    if s.slot in self.charging
                    else None,
                )
                for s in self.config.slots
            ],
        )


class LockersSource:
    name = "lockers"

    def __init__(
        self,
        config: LockersSection,
        room: RoomSection,
        interval_s: float,
        clock: Clock,
        pin_factory: Any,  # noqa: ANN401 - a gpiozero pin Factory
        *,
        badge_reader: BadgeReader | None = None,
        secret: bytes | None = None,
        state_path: Path | None = None,
    ) -> None:
        if badge_reader is not None and not secret:
            raise ValueError("a badge reader needs the site secret to pseudonymise badges")
        self.config = config
        self.room = room
        self.interval_s = interval_s
        self.clock = clock
        self.pin_factory = pin_factory
        self.badge_reader = badge_reader
        self._secret = secret or b""
        self.state_path = state_path
        #: Why the loans file was moved aside at start, reported once ``run`` has a sink.
        self.load_problem: str | None = None
        self._save_failed = False
        self.loans: dict[str, Loan] = self._load()
        self._banks: list[_Bank] = []
        self._wake = asyncio.Event()
        self._last_badge: tuple[str, float] | None = None
        self._tg: asyncio.TaskGroup | None = None
        #: set once the pins are open (a simulation drives them only after that)
        self.opened = asyncio.Event()

    # -- loans ---------------------------------------------------------------------------
    def _load(self) -> dict[str, Loan]:
        if self.state_path is None or not self.state_path.exists():
            return {}
        try:
            text = self.state_path.read_text()
        except OSError as exc:  # unreadable, not damaged: leave it for someone to look at
            _LOGGER.warning(
                "%s: cannot read open loans (%s); starting without", self.state_path, exc
            )
            self.load_problem = f"unreadable: {exc}"
            return {}
        try:
            return parse_loans(json.loads(text))
        except ValueError as exc:
            try:
                aside = move_file_aside(self.state_path)
            except OSError as move_exc:
                _LOGGER.warning("%s: cannot move it aside: %s", self.state_path, move_exc)
                aside = self.state_path
            _LOGGER.error(  # noqa: TRY400 - what is wrong with the file is the story
                "%s is not a valid loans file (%s): moved aside to %s, starting without",
                self.state_path,
                exc,
                aside.name,
            )
            self.load_problem = f"moved aside to {aside.name}: {exc}"
            return {}

    def _save(self, sink: Sink) -> None:
        """A failed save (a full disk) keeps the loans in memory, reported as ``loans_save``
        until a later change saves them: the room goes on, and no loan is forgotten."""
        if self.state_path is None:
            return
        tmp = self.state_path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps({k: asdict(v) for k, v in self.loans.items()}))
            tmp.replace(self.state_path)  # atomic: a power cut leaves the old or the new file
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            self._save_failed = True
            sink.fault("loans_save", f"cannot save open loans ({exc}); kept in memory")
            return
        if self._save_failed:
            self._save_failed = False
            sink.fault("loans_save", None)

    def due_for(self, now: datetime) -> datetime:
        if self.config.loan_due == "hours":
            return now + timedelta(hours=self.config.loan_hours)
        local = now.astimezone(self.room.tz)
        due = datetime.combine(local.date(), self.room.closes, tzinfo=self.room.tz)
        if due <= local:
            # borrowed after closing (a late return desk): due at the next day's closing
            due = datetime.combine(
                local.date() + timedelta(days=1), self.room.closes, tzinfo=self.room.tz
            )
        return due

    # -- hardware ------------------------------------------------------------------------
    def _open(self, loop: asyncio.AbstractEventLoop) -> None:
        from gpiozero import DigitalInputDevice, OutputDevice  # noqa: PLC0415

        f = self.pin_factory

        def wake() -> None:
            loop.call_soon_threadsafe(self._wake.set)

        for bank in self.config.banks:
            door = DigitalInputDevice(bank.door_pin, pull_up=True, pin_factory=f)
            relay = (
                OutputDevice(bank.relay_pin, initial_value=False, pin_factory=f)
                if bank.relay_pin is not None
                else None
            )
            present, charging = {}, {}
            for slot in bank.slots:
                present[slot.slot] = DigitalInputDevice(
                    slot.present_pin, pull_up=True, pin_factory=f
                )
                if slot.charging_pin is not None:
                    charging[slot.slot] = DigitalInputDevice(
                        slot.charging_pin, pull_up=True, pin_factory=f
                    )
            for device in [door, *present.values(), *charging.values()]:
                device.when_activated = wake
                device.when_deactivated = wake
            self._banks.append(_Bank(bank, door, relay, present, charging))

    def _close(self) -> None:
        for bank in self._banks:
            for device in [bank.door, bank.relay, *bank.present.values(), *bank.charging.values()]:
                if device is not None:
                    device.close()

    # -- logic ---------------------------------------------------------------------------
    def _diff(self, sink: Sink, bank: _Bank, before: LockerData, after: LockerData) -> None:
        bid = bank.config.id
        if before.door_open != after.door_open:
            sink.emit(
                EventData(type="door_opened" if after.door_open else "door_closed", locker=bid)
            )
        now = self.clock.now()
        for old, new in zip(before.slots, after.slots, strict=True):
            key = f"{bid}/{new.slot}"
            if old.present and not new.present:
                borrower = None
                if (
                    self._last_badge
                    and self.clock.monotonic() - self._last_badge[1] <= BADGE_ATTRIBUTION_S
                ):
                    borrower = self._last_badge[0]
                due = self.due_for(now)
                self.loans[key] = Loan(borrower, due.isoformat())
                self._save(sink)
                sink.emit(
                    EventData(
                        type="checkout", locker=bid, slot=new.slot, borrower=borrower, due=due
                    )
                )
            elif not old.present and new.present:
                loan = self.loans.pop(key, None)
                self._save(sink)
                sink.emit(
                    EventData(
                        type="return",
                        locker=bid,
                        slot=new.slot,
                        borrower=loan.borrower if loan else None,
                    )
                )

    def _overdue(self, sink: Sink) -> None:
        now = self.clock.now()
        for key, loan in self.loans.items():
            due = datetime.fromisoformat(loan.due)
            if due.tzinfo is None:  # never written so; read as the room's time, not a crash
                due = due.replace(tzinfo=self.room.tz)
            if not loan.overdue_reported and now >= due:
                bank, slot = key.split("/", 1)
                loan.overdue_reported = True
                self._save(sink)
                sink.emit(
                    EventData(
                        type="overdue", locker=bank, slot=slot, borrower=loan.borrower, due=due
                    )
                )

    async def _on_badge(self, sink: Sink, badge_id: str) -> None:
        pseudonym = pseudonymise(badge_id, self._secret)
        del badge_id  # from here on only the pseudonym exists
        allow = self.config.badge.allow if self.config.badge else "any"
        if allow != "any" and pseudonym not in allow:
            sink.emit(EventData(type="badge_denied", borrower=pseudonym))
            return
        self._last_badge = (pseudonym, self.clock.monotonic())
        sink.emit(EventData(type="badge_accepted", borrower=pseudonym))
        for bank in self._banks:
            if bank.relay is not None and self._tg is not None:
                self._tg.create_task(self._pulse(bank), name=f"relay-{bank.config.id}")

    async def _pulse(self, bank: _Bank) -> None:
        bank.relay.on()
        try:
            await self.clock.sleep(bank.config.relay_open_s)
        finally:
            bank.relay.off()

    async def _badges(self, sink: Sink) -> None:
        assert self.badge_reader is not None  # noqa: S101 - only started with a reader
        while True:
            await self._on_badge(sink, await self.badge_reader.read())

    async def run(self, sink: Sink) -> None:
        if not self.config.banks:
            return
        if self.load_problem is not None:
            sink.fault("loans_file", self.load_problem)
        self._open(asyncio.get_running_loop())
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg  # relay pulses run here, so they end before the pins close
                if self.badge_reader is not None:
                    tg.create_task(self._badges(sink), name="badge-reader")
                tg.create_task(self._watch(sink), name="locker-watch")
        finally:
            self._close()

    async def _watch(self, sink: Sink) -> None:
        state = {b.config.id: b.data() for b in self._banks}
        # slots found empty at start with no loan on file: lent while we were down
        for bank in self._banks:
            for slot in state[bank.config.id].slots:
                key = f"{bank.config.id}/{slot.slot}"
                if not slot.present and key not in self.loans:
                    self.loans[key] = Loan(None, self.due_for(self.clock.now()).isoformat())
        for bank in self._banks:
            sink.emit(state[bank.config.id], bank.config.id)
        self.opened.set()  # from here on every change is seen as a change
        last_sent = self.clock.monotonic()
        while True:
            self._wake.clear()
            for bank in self._banks:
                new = bank.data()
                old = state[bank.config.id]
                if new != old:
                    self._diff(sink, bank, old, new)
                    state[bank.config.id] = new
                    sink.emit(new, bank.config.id)
            self._overdue(sink)
            if self.clock.monotonic() - last_sent >= self.interval_s:
                for bank in self._banks:
                    sink.emit(state[bank.config.id], bank.config.id)
                last_sent = self.clock.monotonic()
            sleeper = asyncio.ensure_future(self.clock.sleep(self.interval_s))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                waker.cancel()
