"""Running the display: the hub with its calendars, the app, uvicorn."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import uvicorn

from gateway.central.config import CentralConfig
from gateway.central.display.calendars import RoomCalendar
from gateway.central.display.hub import Hub
from gateway.central.display.live import Availability
from gateway.central.display.service import create_app
from gateway.central.hours import OpeningHours

_LOGGER = logging.getLogger(__name__)


def calendars_for(config: CentralConfig, base_dir: Path) -> dict[tuple[str, str], RoomCalendar]:
    """A calendar per listed room with a calendar or opening hours (an hours-only room has a
    calendar that never loads: open or closed, never booked)."""
    d = config.display
    tz = ZoneInfo(d.timezone)
    out = {}
    for room in d.rooms:
        hours = room.hours or d.hours
        if room.calendar is None and hours is None:
            continue
        source: str | Path = room.calendar or ""
        if room.calendar and "://" not in room.calendar:
            path = Path(room.calendar)
            source = path if path.is_absolute() else base_dir / path
        out[(room.site, room.room)] = RoomCalendar(
            source,
            tz,
            hours or OpeningHours.always_open(d.timezone),
            timeout_s=d.calendar_timeout_s,
            max_occurrences=d.calendar_max_occurrences,
            stale_after=timedelta(seconds=d.calendar_stale_after_s),
        )
    return out


def build_hub(
    config: CentralConfig, base_dir: Path, clock: Callable[[], datetime] | None = None
) -> Hub:
    """The hub; ``base_dir`` resolves calendar files named relative to the config file,
    ``clock`` is the demo's simulated one (default: the real time)."""
    cals = calendars_for(config, base_dir)

    with_source = {(r.site, r.room) for r in config.display.rooms if r.calendar}

    def lookup(site: str, room: str, now: datetime) -> Availability | None:
        cal = cals.get((site, room))
        if cal is None:
            return None
        status = cal.status(now)
        if (site, room) not in with_source:
            # opening hours only: there are no bookings to know
            status = dataclasses.replace(status, bookings_known=True)
        return status

    hub = (
        Hub(config, calendars=lookup)
        if clock is None
        else Hub(config, clock=clock, calendars=lookup)
    )
    hub.calendar_objects = cals
    return hub


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside a program that handles its own signals (the demo): set
    ``should_exit`` to stop it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def server_for(hub: Hub, *, embedded: bool = False) -> uvicorn.Server:
    d = hub.settings
    config = uvicorn.Config(
        create_app(hub),
        host=d.host,
        port=d.port,
        log_level="warning",
        proxy_headers=True,
        # open pages hold their event streams: do not wait for them to end on a stop
        timeout_graceful_shutdown=2,
    )
    server = EmbeddedServer(config) if embedded else uvicorn.Server(config)

    def stop() -> None:  # the watchdog: a loop is dead or stuck
        server.should_exit = True

    hub.on_exit = stop
    return server


async def serve(config: CentralConfig, base_dir: Path) -> int:
    """Serve until stopped (0), or until a loop is dead or stuck (1: start a fresh one)."""
    hub = build_hub(config, base_dir)
    server = server_for(hub)
    _LOGGER.info("display on http://%s:%d/", config.display.host, config.display.port)
    await server.serve()
    return hub.exit_code
