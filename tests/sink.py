"""A Sink that records what a source emits, for tests that drive one source alone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gateway.models import AnyData, EventData


class Recorder:
    def __init__(self) -> None:
        self.items: list[tuple[AnyData, str | None]] = []
        self.faults: dict[str, str | None] = {}
        self.changed = asyncio.Event()

    # -- the Sink protocol -----------------------------------------------------------------
    def emit(self, data: AnyData, sub: str | None = None, ts: object = None) -> None:
        self.items.append((data, sub))
        self.changed.set()

    def fault(self, source: str, problem: str | None) -> None:
        self.faults[source] = problem

    # -- for the assertions ---------------------------------------------------------------
    @property
    def data(self) -> list[AnyData]:
        return [d for d, _ in self.items]

    def mark(self) -> int:
        return len(self.items)

    def events(self, kind: str) -> list[EventData]:
        return [d for d in self.data if isinstance(d, EventData) and d.type == kind]

    async def until(
        self, pred: Callable[[Any], bool], timeout: float = 10.0, after: int = 0
    ) -> Any:
        """The first reading from index ``after`` on that satisfies ``pred``."""

        async def wait() -> Any:
            while True:
                for d in self.data[after:]:
                    if pred(d):
                        return d
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(wait(), timeout)

    async def event(self, kind: str, timeout: float = 10.0) -> EventData:
        """The newest event of ``kind``, waiting for the first."""
        await self.until(lambda d: isinstance(d, EventData) and d.type == kind, timeout)
        return self.events(kind)[-1]
