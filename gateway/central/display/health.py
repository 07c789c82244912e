"""What the display's loops are doing, ``/healthz``, and the watchdog that acts on it.

A display that is up is not a display that works: its MQTT loop can end and leave every room
"no current data" while the gateways report; its event loop can hang in one message while the
process lives on. Each loop keeps a :class:`Beat` (what it does, since when, how often it
failed in a row); ``/healthz`` turns them into 200 or 503 with a JSON body, the same verdict
the ingest gives (``gateway.central.ingest.health``; the layering keeps the services apart,
so the few lines are not shared). The metrics port answers it from its own thread, so even a
hung event loop is seen; the :class:`Watchdog` thread then ends the process with 1 for systemd
or compose to start a fresh one, as it does for a loop that keeps failing.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable

from gateway.central.health import LoopHealth

_LOGGER = logging.getLogger(__name__)

#: A loop that failed this often in a row, each time soon after its restart, is dead.
DEAD_AFTER_FAILURES = 5


class Beat:
    """What one loop last said about itself; written by the loop, read by any thread."""

    def __init__(self, loop: str, state: str = "starting") -> None:
        self.loop = loop
        self.state = state
        self.detail = ""
        #: monotonic time of the last sign of progress
        self.at = time.monotonic()
        #: monotonic start of the one piece of work in hand (a message), None between
        self.busy_since: float | None = None
        self.failures = 0  # in a row; reset by a run that lasted
        self.running = True  # False once its supervisor gave up or ended

    def tick(self, state: str, detail: str = "") -> None:
        self.state, self.detail, self.at = state, detail, time.monotonic()

    def health(self, stuck_after_s: float, *, silent_ok: bool = True) -> LoopHealth:
        """``silent_ok``: the loop may wait for long (MQTT with no messages); else it beats."""
        now = time.monotonic()
        if not self.running or self.failures >= DEAD_AFTER_FAILURES:
            detail = f"failed {self.failures} times in a row; {self.detail}".rstrip("; ")
            return LoopHealth(self.loop, ok=False, state="dead", detail=detail)
        busy = self.busy_since
        if busy is not None and now - busy > stuck_after_s:
            detail = f"one piece of work in hand for {now - busy:.0f} s"
            return LoopHealth(self.loop, ok=False, state="stuck", detail=detail)
        if not silent_ok and now - self.at > stuck_after_s:
            detail = f"no progress for {now - self.at:.0f} s (the event loop may hang)"
            return LoopHealth(self.loop, ok=False, state="stuck", detail=detail)
        ok = self.state != "failed"
        return LoopHealth(self.loop, ok=ok, state=self.state, detail=self.detail)


def _exit_now() -> None:
    logging.shutdown()
    os._exit(1)


class Watchdog:
    """A thread that asks the service to stop with 1 when a loop is dead or stuck, and ends the
    process itself when the event loop cannot even do that (it hangs)."""

    def __init__(
        self,
        health: Callable[[], Iterable[LoopHealth]],
        request_exit: Callable[[], None],
        *,
        check_s: float = 1.0,
        exit_after_s: float = 10.0,
        hard_exit: Callable[[], None] = _exit_now,
    ) -> None:
        self.health = health
        self.request_exit = request_exit
        self.check_s = check_s
        self.exit_after_s = exit_after_s
        self.hard_exit = hard_exit
        self.fired = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="display-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.check_s):
            fatal = [h for h in self.health() if h.fatal]
            if not fatal:
                continue
            for h in fatal:
                _LOGGER.critical(
                    "the display's %s loop is %s (%s): exiting with 1 to be started again",
                    h.loop,
                    h.state,
                    h.detail,
                )
            self.fired = True
            self.request_exit()
            if not self._stop.wait(self.exit_after_s):
                _LOGGER.critical(
                    "the display did not stop within %.0f s; ending it", self.exit_after_s
                )
                self.hard_exit()
            return
