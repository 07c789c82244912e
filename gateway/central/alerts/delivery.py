"""Delivery to Alertmanager: whatever it answers, the service goes on and tries again.

Alertmanager (or whatever listens at its URL: a proxy, a wrong port, an SSH server) may be
away, slow, answer 5xx, cut an answer short or answer something that is not HTTP at all. None
of that may end the alert service, and none of it may lose a resolution: an alert that
resolved while Alertmanager was away must still reach it as resolved, or its receivers are
told "firing" until the last ``endsAt`` (four resend intervals) runs out. So resolutions wait
in a bounded outbox (the newest per alert; the oldest go first when it is full, counted)
until a post succeeds, and after a failed post every firing alert is sent again. An outage is
logged once when it begins and once when it ends; each failed attempt is counted.

A 4xx is the one answer about the alerts themselves: the batch is split until the alert that
Alertmanager refuses alone is found, and only that one is dropped (counted).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import math
import random
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.central.alerts.health import LoopStatus

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")

#: Resolutions kept while Alertmanager is away (one per alert instance; the oldest go first).
MAX_UNSENT_RESOLVED = 10_000


class AlertmanagerError(ConnectionError):
    """Alertmanager did not take a post; ``status`` is its HTTP status when it gave one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def refused(self) -> bool:
        """400/422: Alertmanager read the alerts and refused them. Any other 4xx (auth by a
        proxy, a wrong path) says nothing about the alerts: that is unavailability."""
        return self.status in (400, 422)


def post_alerts(url: str, alerts: list[dict[str, Any]], timeout: float = 10.0) -> None:
    """Alertmanager's v2 API. Every failure, HTTP or not, becomes ``AlertmanagerError``: a
    non-HTTP answer raises ``http.client.HTTPException``, which is no ``OSError``."""
    request = urllib.request.Request(  # noqa: S310 - configured http(s) URL
        f"{url}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310
            resp.read()  # an answer cut short raises here, not silently
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read().decode(errors="replace")[:300]
        except (OSError, http.client.HTTPException) as cut:
            body = f"(answer cut short: {cut!r})"
        raise AlertmanagerError(f"Alertmanager answered {exc.code}: {body}", exc.code) from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise AlertmanagerError(f"Alertmanager at {url} unusable: {exc!r:.300}") from exc


def post_bisect(url: str, alerts: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
    """Post; on a refusal split the batch and return the alerts refused on their own while
    others were taken. Raises ``AlertmanagerError`` when nothing can be shown to pass."""
    refused = _bisect(url, alerts, timeout)
    if refused and len(refused) == len(alerts):
        raise AlertmanagerError(f"Alertmanager refused all {len(alerts)} alerts", 400)
    return refused


def _bisect(url: str, alerts: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
    try:
        post_alerts(url, alerts, timeout)
    except AlertmanagerError as exc:
        if not exc.refused:
            raise
        if len(alerts) == 1:
            return alerts
        mid = len(alerts) // 2
        return _bisect(url, alerts[:mid], timeout) + _bisect(url, alerts[mid:], timeout)
    return []


@dataclass
class Backoff:
    """Capped, jittered exponential delay between failed posts."""

    min_s: float = 0.5
    max_s: float = 30.0
    failures: int = 0

    def next_delay(self) -> float:
        self.failures += 1
        delay = min(self.max_s, self.min_s * 2 ** min(self.failures - 1, 16))
        return float(delay * random.uniform(0.8, 1.0))  # jitter, not crypto

    def reset(self) -> None:
        self.failures = 0


class Outbox:
    """What Alertmanager still has to hear: resolutions by alert, and whether a full resend of
    the firing alerts is owed (after a failure, or when the resend interval is up)."""

    def __init__(self, limit: int = MAX_UNSENT_RESOLVED) -> None:
        self.limit = limit
        self.resolved: OrderedDict[tuple[str, ...], dict[str, Any]] = OrderedDict()
        self.fired: dict[tuple[str, ...], dict[str, Any]] = {}
        self.dropped = 0
        #: monotonic time when the current outage began; None while posts succeed
        self.down_since: float | None = None

    def add_resolved(self, key: tuple[str, ...], alert: dict[str, Any]) -> None:
        self.fired.pop(key, None)
        self.resolved.pop(key, None)
        self.resolved[key] = alert
        while len(self.resolved) > self.limit:
            self.resolved.popitem(last=False)
            self.dropped += 1

    def add_fired(self, key: tuple[str, ...], alert: dict[str, Any]) -> None:
        # a new firing supersedes a resolution of the same alert not yet delivered
        self.resolved.pop(key, None)
        self.fired[key] = alert

    def take(self) -> list[dict[str, Any]]:
        return [*self.resolved.values(), *self.fired.values()]

    def delivered(self, sent: list[dict[str, Any]]) -> None:
        """Forget what was sent, unless it was replaced by something newer meanwhile."""
        ids = {id(a) for a in sent}
        for store in (self.resolved, self.fired):
            for key in [k for k, a in store.items() if id(a) in ids]:
                del store[key]

    def went_down(self, exc: AlertmanagerError) -> bool:
        """Note a failure; True when it begins an outage (log it then, not every time)."""
        if self.down_since is None:
            self.down_since = time.monotonic()
            return True
        return False

    def came_back(self) -> float | None:
        """Note a success; the outage's length when one ends."""
        if self.down_since is None:
            return None
        length = time.monotonic() - self.down_since
        self.down_since = None
        return length


async def in_daemon_thread(fn: Callable[..., T], *args: Any) -> T:  # noqa: ANN401
    """``asyncio.to_thread`` in a daemon thread: a call that never returns (an answer that
    drips forever) must not hold the process at exit, as the default executor would."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, exc: BaseException | None) -> None:
        if future.done():
            return  # the waiter was cancelled meanwhile
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=work, name=f"alerts-{fn.__name__}", daemon=True).start()
    return await future


async def wait_any(
    stop: asyncio.Event, timeout: float | None, event: asyncio.Event | None = None
) -> None:
    """Wait until ``stop`` or ``event`` is set, or ``timeout`` seconds (None: no limit)."""
    waits = [asyncio.ensure_future(e.wait()) for e in (stop, event) if e is not None]
    limit = None if timeout is None else max(0.0, timeout)
    try:
        await asyncio.wait(waits, timeout=limit, return_when="FIRST_COMPLETED")
    finally:
        for w in waits:
            w.cancel()


class Courier:
    """The delivery loop: the outbox to Alertmanager, everything firing again every
    ``resend_s`` and after every failure, with backoff while Alertmanager is away."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        resend_s: float,
        firing: Callable[[], Awaitable[list[dict[str, Any]]]],
        status: LoopStatus,
        registry: CollectorRegistry,
        grace_s: float = 10.0,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.resend_s = resend_s
        self.firing = firing
        self.status = status
        self.grace_s = grace_s
        self.outbox = Outbox()
        self.wake = asyncio.Event()
        self.backoff = Backoff(max_s=max(1.0, min(30.0, resend_s)))
        #: after a start or a failure everything firing is sent again
        self.owed = True
        self._resend_at = 0.0  # monotonic
        self.posts = Counter(
            "learnroom_alerts_alertmanager_posts",
            "posts to Alertmanager, by result",
            ["result"],
            registry=registry,
        )
        self.up = Gauge(
            "learnroom_alerts_alertmanager_up",
            "1 while Alertmanager takes posts",
            registry=registry,
        )
        unsent = Gauge(
            "learnroom_alerts_resolutions_unsent",
            "resolutions Alertmanager has not taken yet",
            registry=registry,
        )
        unsent.set_function(lambda: len(self.outbox.resolved))
        self.dropped = Counter(
            "learnroom_alerts_resolutions_dropped",
            "alerts given up: the outbox was full, or Alertmanager refused one on its own",
            registry=registry,
        )

    def fired(self, key: tuple[str, ...], alert: dict[str, Any]) -> None:
        self.outbox.add_fired(key, alert)
        self.wake.set()

    def resolved(self, key: tuple[str, ...], alert: dict[str, Any]) -> None:
        before = self.outbox.dropped
        self.outbox.add_resolved(key, alert)
        self.dropped.inc(self.outbox.dropped - before)
        self.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        outbox = self.outbox
        while not stop.is_set():
            due_in = self._resend_at - time.monotonic()
            if not (outbox.resolved or outbox.fired) and due_in > 0 and not self.owed:
                self.status.set("idle", "nothing unsent", within=due_in + self.grace_s)
                self.wake.clear()
                await wait_any(stop, due_in, self.wake)
                continue
            full = self.owed or due_in <= 0
            queued = outbox.take()
            batch = [*outbox.resolved.values(), *await self.firing()] if full else queued
            if batch:
                await self._post(batch, queued, stop)
            else:
                self.owed = False
            if full and not self.owed:
                self._resend_at = time.monotonic() + self.resend_s

    async def _post(
        self, batch: list[dict[str, Any]], queued: list[dict[str, Any]], stop: asyncio.Event
    ) -> None:
        posts = 1 + 2 * math.ceil(math.log2(len(batch) + 1))  # bisection's worst case
        within = posts * (2 * self.timeout_s + 5)
        self.status.set("posting", f"{len(batch)} alerts to {self.url}", within=within)
        try:
            refused = await in_daemon_thread(post_bisect, self.url, batch, self.timeout_s)
        except AlertmanagerError as exc:
            self.posts.labels("failed").inc()
            self.up.set(0)
            if self.outbox.went_down(exc):
                _LOGGER.warning(
                    "Alertmanager is not taking alerts (%s); holding %d resolutions and "
                    "retrying until it does",
                    exc,
                    len(self.outbox.resolved),
                )
            self.owed = True
            delay = self.backoff.next_delay()
            detail = f"{exc}; next try in {delay:.1f} s"
            self.status.set("retrying", detail, within=delay + self.grace_s)
            await wait_any(stop, delay)
            return
        self.posts.labels("ok").inc()
        self.up.set(1)
        if refused:
            self.dropped.inc(len(refused))
            _LOGGER.warning("Alertmanager refused %d alerts on their own", len(refused))
        self.outbox.delivered(queued)
        self.backoff.reset()
        self.owed = False
        if (length := self.outbox.came_back()) is not None:
            _LOGGER.warning("Alertmanager takes alerts again after %.0f s", length)
