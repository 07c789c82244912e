"""What every source is and what it talks to.

A source is a small class that is handed its hardware (a gpiozero pin factory, an I2C
transceiver, a command runner, file paths) and a clock in its constructor, does no I/O there,
and reports through a ``Sink`` from ``run``. The agent runs each source as a named task.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from gateway.models import AnyData


class Sink(Protocol):
    """Where readings go: the agent wraps them in envelopes and stores them in the outbox."""

    def emit(self, data: AnyData, sub: str | None = None, ts: datetime | None = None) -> None:
        """Report one reading; ``sub`` is the locker id for lockers; ``ts`` defaults to now."""
        ...

    def fault(self, source: str, problem: str | None) -> None:
        """Say that ``source`` is failing (``problem``) or well again (``None``)."""
        ...


class Source(Protocol):
    #: Task name and the word used in health ``faults``.
    name: str

    async def run(self, sink: Sink) -> None:
        """Report until cancelled; never raise for a sensor fault, report it instead."""
        ...
