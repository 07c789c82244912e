"""Driving mock pins the way the room's hardware would (gpiozero ``MockFactory``).

Electrical conventions match the sources: beams, door reed switches and slot switches pull
low when active (blocked, closed, device present); PIRs and seat sensors drive high.
"""

from __future__ import annotations

from typing import Any

from gpiozero.pins.mock import MockFactory, MockPin

from gateway.agent.config import LockersSection, OccupancySection

#: State changes a simulated pin remembers (gpiozero's tests read ``states``; nobody here does).
_KEEP_STATES = 16


class WiredMockPin(MockPin):  # type: ignore[misc]
    """A mock pin wired to something that drives it: a pull resistor cannot override that.

    gpiozero's ``MockPin`` jumps to its pull level when a device opens it, which would undo the
    state the simulated hardware set up before the sources started. A real switch or sensor
    keeps driving its line, so once driven, a wired pin ignores the pull.
    """

    _wired = False

    def drive_high(self) -> None:
        self._wired = True
        super().drive_high()

    def drive_low(self) -> None:
        self._wired = True
        super().drive_low()

    def _set_pull(self, value: str) -> None:
        if not self._wired:
            super()._set_pull(value)
        else:
            self._pull = value

    def _change_state(self, value: bool) -> bool:
        # MockPin records every change in ``states`` for a test's assertions; a simulated room
        # runs for days (the one-hour soak grew by this list), so keep only the last few
        changed: bool = super()._change_state(value)
        if len(self.states) > _KEEP_STATES:
            del self.states[:-_KEEP_STATES]
        return changed


def sim_factory() -> MockFactory:
    """A ``MockFactory`` whose pins keep what the simulation drives."""
    return MockFactory(pin_class=WiredMockPin)


class RoomPins:
    def __init__(self, factory: Any, occupancy: OccupancySection, lockers: LockersSection) -> None:  # noqa: ANN401
        self.f = factory
        self.occ = occupancy
        self.lockers = {b.id: b for b in lockers.banks}
        for bank in lockers.banks:  # initial state: doors shut, every device in and charging
            self._pin(bank.door_pin).drive_low()
            for slot in bank.slots:
                self._pin(slot.present_pin).drive_low()
                if slot.charging_pin is not None:
                    self._pin(slot.charging_pin).drive_low()
        for pin in (occupancy.beam_outer_pin, occupancy.beam_inner_pin):
            if pin is not None:
                self._pin(pin).drive_high()  # beams clear
        for pin in occupancy.seat_pins:
            self._pin(pin).drive_high() if not occupancy.seat_active_high else self._pin(
                pin
            ).drive_low()

    def _pin(self, pin: int | str) -> Any:  # noqa: ANN401
        return self.f.pin(pin)

    def _cross(self, first: int | str | None, second: int | str | None) -> None:
        if first is None or second is None:
            return
        a, b = self._pin(first), self._pin(second)
        a.drive_low()
        b.drive_low()
        a.drive_high()
        b.drive_high()

    def person_enters(self) -> None:
        self._cross(self.occ.beam_outer_pin, self.occ.beam_inner_pin)

    def person_leaves(self) -> None:
        self._cross(self.occ.beam_inner_pin, self.occ.beam_outer_pin)

    def motion(self, active: bool) -> None:
        for pin in self.occ.pir_pins:
            self._pin(pin).drive_high() if active else self._pin(pin).drive_low()

    def seats_taken(self, n: int) -> None:
        for i, pin in enumerate(self.occ.seat_pins):
            taken = i < n
            if taken == self.occ.seat_active_high:
                self._pin(pin).drive_high()
            else:
                self._pin(pin).drive_low()

    def _slot(self, bank: str, slot: str) -> Any:  # noqa: ANN401
        return next(s for s in self.lockers[bank].slots if s.slot == slot)

    def door(self, bank: str, open_: bool) -> None:
        pin = self._pin(self.lockers[bank].door_pin)
        pin.drive_high() if open_ else pin.drive_low()

    def take_device(self, bank: str, slot: str) -> None:
        s = self._slot(bank, slot)
        self._pin(s.present_pin).drive_high()
        if s.charging_pin is not None:
            self._pin(s.charging_pin).drive_high()

    def return_device(self, bank: str, slot: str, charging: bool = True) -> None:
        s = self._slot(bank, slot)
        self._pin(s.present_pin).drive_low()
        self.set_charging(bank, slot, charging)

    def set_charging(self, bank: str, slot: str, on: bool) -> None:
        s = self._slot(bank, slot)
        if s.charging_pin is not None:
            self._pin(s.charging_pin).drive_low() if on else self._pin(s.charging_pin).drive_high()

    def relay_on(self, bank: str) -> bool:
        relay = self.lockers[bank].relay_pin
        return relay is not None and bool(self._pin(relay).state)
