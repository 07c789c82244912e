"""The display's background work, supervised: MQTT, the ticker, the calendars, the watchdog.

Each loop runs under :func:`supervise`, as a broker client's loop does in Home Assistant: an
error is logged and counted and the loop starts again after a capped backoff; a loop that keeps
failing at once is dead, and the :class:`~gateway.central.display.health.Watchdog` then stops
the process with 1, as it does when a loop hangs. One MQTT message that meets a bug is counted
by the hub and the loop goes on (``Hub.take``).

Calendars load each on its own schedule in a pool of their own, every fetch with its deadline,
so a slow host delays its own room only (``calendars.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import aiomqtt
from fastapi import FastAPI

from gateway.central.display.calendars import RoomCalendar
from gateway.central.display.health import Beat, Watchdog
from gateway.central.display.hub import Hub
from gateway.central.health import serve
from gateway.config import tls_context

_LOGGER = logging.getLogger(__name__)

#: Calendar fetches at once at most; each ends by its deadline, so the rest wait briefly.
MAX_CALENDAR_THREADS = 32


async def supervise(
    hub: Hub, beat: Beat, run: Callable[[], Awaitable[None]], stop: asyncio.Event
) -> None:
    """Run ``run`` until ``stop``; start it again (1 s, doubling to 30 s) when it fails or
    ends by itself. A run that lasted ``stuck_after_s`` clears the failures before it."""
    delay = 1.0
    while not stop.is_set():
        started = time.monotonic()
        try:
            await run()
        except Exception as exc:
            why = f"{type(exc).__name__}: {exc}"[:200]
            _LOGGER.exception("the display's %s loop failed; starting it again", beat.loop)
        else:
            if stop.is_set():
                return
            why = "it ended by itself"
            _LOGGER.error("the display's %s loop ended by itself; starting it again", beat.loop)
        hub.loop_restarts.labels(beat.loop).inc()
        if time.monotonic() - started > hub.settings.stuck_after_s:
            beat.failures, delay = 0, 1.0
        beat.failures += 1
        beat.tick("failed", why)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, 30.0)


async def ticker(hub: Hub, stop: asyncio.Event) -> None:
    """Time changes views too: a gateway falls silent, a booking starts, data grows stale."""
    beat = hub.beats["ticker"]
    while not stop.is_set():
        hub.refresh()
        beat.tick("running", f"{len(hub.views)} rooms")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def calendars(hub: Hub, stop: asyncio.Event) -> None:
    """Every room's calendar on its own schedule, all at once: none waits for another."""
    beat = hub.beats["calendars"]
    todo = {
        key: cal
        for key, cal in hub.calendar_objects.items()
        if (room := hub.listed.get(key)) is not None and room.calendar
    }
    beat.tick("idle" if not todo else "loading", f"{len(todo)} calendars")
    if not todo:
        await stop.wait()  # opening hours only: nothing to load
        return
    pool = ThreadPoolExecutor(min(MAX_CALENDAR_THREADS, len(todo)), "display-calendar")
    try:
        async with asyncio.TaskGroup() as group:
            for key, cal in todo.items():
                name = f"display-calendar-{key[0]}/{key[1]}"
                group.create_task(_calendar(hub, key, cal, pool, stop), name=name)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a fetch ends by its own deadline


async def _calendar(
    hub: Hub, key: tuple[str, str], cal: RoomCalendar, pool: ThreadPoolExecutor, stop: asyncio.Event
) -> None:
    beat = hub.beats["calendars"]
    while not stop.is_set():
        try:
            ok = await cal.aload(hub.clock(), pool)
        except Exception:
            _LOGGER.exception("calendar of %s/%s: the load failed unexpectedly", *key)
            cal.last_error, ok = "load failed unexpectedly", False
        result = "ok" if ok else "refused" if cal.refused else "failed"
        hub.calendar_loads.labels(result).inc()
        if not ok:
            _LOGGER.warning("calendar of %s/%s: %s", *key, cal.last_error)
        failing = sum(1 for c in hub.calendar_objects.values() if c.last_error)
        beat.tick("running", f"{len(hub.calendar_objects)} calendars, {failing} not read")
        hub.refresh()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), hub.settings.calendar_refresh_s)


def _publisher(client: aiomqtt.Client) -> Callable[[str, bytes], None]:
    """Publish from sync code (the hub) without waiting for the PUBACK."""
    pending: set[asyncio.Task[None]] = set()

    def publish(topic: str, payload: bytes) -> None:
        task = asyncio.get_running_loop().create_task(client.publish(topic, payload, qos=1))
        pending.add(task)
        task.add_done_callback(pending.discard)

    return publish


async def mqtt(hub: Hub, stop: asyncio.Event) -> None:
    """The rooms' topics into the hub; a lost broker is waited for, never fatal."""
    m = hub.config.mqtt
    beat = hub.beats["mqtt"]
    while not stop.is_set():
        beat.tick("connecting", f"{m.host}:{m.effective_port}")
        try:
            async with aiomqtt.Client(
                m.host,
                m.effective_port,
                identifier=hub.settings.client_id,
                username=m.username,
                password=m.password,
                tls_context=tls_context(m),
                keepalive=m.keepalive_s,
                protocol=aiomqtt.ProtocolVersion.V5
                if m.protocol == "5"
                else aiomqtt.ProtocolVersion.V311,
            ) as client:
                hub.publish = _publisher(client)
                await client.subscribe(f"{hub.prefix}/+/+/#", qos=1)
                _LOGGER.info("display subscribed to %s/+/+/# on %s", hub.prefix, m.host)
                beat.tick("connected", f"subscribed to {hub.prefix}/+/+/#")
                async for msg in client.messages:
                    beat.busy_since = time.monotonic()
                    try:
                        hub.take(str(msg.topic), msg.payload, retained=msg.retain)
                    finally:
                        beat.busy_since = None
        except aiomqtt.MqttError as exc:
            hub.publish = None
            beat.tick("reconnecting", f"broker lost: {exc}"[:200])
            _LOGGER.warning("display lost the broker (%s); reconnecting", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), m.reconnect_min_s)


def lifespan(
    hub: Hub, *, run_mqtt: bool
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """The app's background work: the supervised loops, /metrics with /healthz, the watchdog."""

    @contextlib.asynccontextmanager
    async def span(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        d = hub.settings
        if not run_mqtt:
            hub.beats.pop("mqtt", None)
        metrics = (
            serve(d.metrics_host, d.metrics_port, hub.registry, hub.health, name="display-metrics")
            if d.metrics_port
            else None
        )

        def request_exit() -> None:
            hub.exit_code = 1
            if hub.on_exit is not None:
                hub.on_exit()

        def from_watchdog() -> None:  # its own thread: hand over to the event loop
            loop.call_soon_threadsafe(request_exit)

        watchdog = Watchdog(hub.health, from_watchdog)
        runs: dict[str, Callable[[Hub, asyncio.Event], Awaitable[None]]] = {
            "ticker": ticker,
            "calendars": calendars,
            "mqtt": mqtt,
        }
        tasks = [
            asyncio.create_task(
                supervise(hub, beat, functools.partial(runs[name], hub, stop), stop),
                name=f"display-{name}",
            )
            for name, beat in hub.beats.items()
        ]
        watchdog.start()
        try:
            yield
        finally:
            stop.set()
            watchdog.stop()
            if metrics is not None:
                metrics.shutdown()
                metrics.server_close()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    return span
