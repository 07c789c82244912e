"""The rooms' live state, their public views, and the open pages that want to hear of changes.

Every change (a message, a gateway going silent, a booking starting) re-derives the views;
each open page has a bounded queue of the rooms that changed. A page that falls so far behind
that its queue overflows is not dropped silently (it would keep showing what it last heard,
"free" for a room that has no current data): its stream is closed, the browser reconnects,
and the new stream starts with the whole state (``Listener.overflowed``, ``version``).

One MQTT message never stops the display: :meth:`Hub.take` counts a bug it meets (per
exception type, logged once each) and returns; the loops' health is kept here too
(``beats``), for ``/healthz`` on both ports.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.central.config import CentralConfig, DisplayRoom
from gateway.central.display.calendars import RoomCalendar
from gateway.central.display.health import Beat
from gateway.central.display.live import (
    Availability,
    Naming,
    RoomInfo,
    RoomLive,
    ViewSettings,
    view,
)
from gateway.central.health import LoopHealth
from gateway.central.validate import Accepted, check
from gateway.models import (
    EnvironmentData,
    EventData,
    LockerData,
    OccupancyData,
    StatusData,
    make_envelope,
)

__all__ = ["CalendarLookup", "Hub", "Listener"]

_LOGGER = logging.getLogger(__name__)

CalendarLookup = Callable[[str, str, datetime], Availability | None]


@dataclass(eq=False)  # compared by identity: each open page is its own listener
class Listener:
    """One open page: its site filter, and the rooms that changed since it last looked."""

    site: str | None
    changed: asyncio.Queue[tuple[str, str]] = field(default_factory=lambda: asyncio.Queue(512))
    #: set when ``changed`` overflowed: the stream ends, the page reconnects for everything
    overflowed: bool = False

    def ended(self) -> bool:
        """True once the stream must end (it fell behind): asked afresh after every wait."""
        return self.overflowed


class Hub:
    """The rooms' live state, their public views, and who wants to hear of changes."""

    def __init__(
        self,
        config: CentralConfig,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        calendars: CalendarLookup | None = None,
    ) -> None:
        self.config = config
        self.settings = config.display
        self.clock = clock
        self.calendars = calendars
        self.prefix = config.mqtt.prefix
        self.window = config.accept.window()
        self.listed: dict[tuple[str, str], DisplayRoom] = {
            (r.site, r.room): r for r in self.settings.rooms
        }
        self.rooms: dict[tuple[str, str], RoomLive] = {key: RoomLive(*key) for key in self.listed}
        self.views: dict[tuple[str, str], RoomInfo] = {}
        self.listeners: set[Listener] = set()
        self.view_settings = ViewSettings(
            report_interval_s=self.settings.report_interval_s,
            min_count=self.settings.min_count,
            no_show_after_s=self.settings.no_show_after_s,
        )
        self.no_shows: set[tuple[str, str, datetime]] = set()
        #: calendars to reload now and then (``display_app.calendars_for``)
        self.calendar_objects: dict[tuple[str, str], RoomCalendar] = {}
        self.publish: Callable[[str, bytes], Any] | None = None
        self.registry = CollectorRegistry()
        self.updates_sent = Counter(
            "learnroom_display_updates_sent",
            "room cards sent to open pages",
            registry=self.registry,
        )
        self.messages = Counter(
            "learnroom_display_mqtt_messages", "MQTT messages taken", registry=self.registry
        )
        self.handling_errors = Counter(
            "learnroom_display_handling_errors",
            "MQTT messages whose handling met a bug (skipped, the loop went on), by error",
            ["error"],
            registry=self.registry,
        )
        self.streams_overflowed = Counter(
            "learnroom_display_streams_overflowed",
            "event streams closed because the page fell behind (it reconnects)",
            registry=self.registry,
        )
        self.loop_restarts = Counter(
            "learnroom_display_loop_restarts",
            "background loops started again after failing or ending",
            ["loop"],
            registry=self.registry,
        )
        self.calendar_loads = Counter(
            "learnroom_display_calendar_loads",
            "calendar loads: ok, failed (unreachable, slow, unreadable) or refused (too costly)",
            ["result"],
            registry=self.registry,
        )
        #: rises with every refresh that changed a view: a page knows what it has seen
        self.version = 0
        self.beats = {name: Beat(name) for name in ("mqtt", "ticker", "calendars")}
        #: 1 once the watchdog asked the process to stop; ``on_exit`` stops the server
        self.exit_code = 0
        self.on_exit: Callable[[], None] | None = None
        self._errors_seen: set[str] = set()
        Gauge(
            "learnroom_display_open_pages", "pages listening for updates", registry=self.registry
        ).set_function(lambda: len(self.listeners))
        Gauge(
            "learnroom_display_rooms_live", "rooms with current data", registry=self.registry
        ).set_function(lambda: sum(1 for v in self.views.values() if v.live))

    # -- state -----------------------------------------------------------------------------

    def name(self, site: str, room: str, lang: str = "de") -> str:
        listed = self.listed.get((site, room))
        if listed is None:
            return room
        if lang == "en" and listed.name_en:
            return listed.name_en
        return listed.name or room

    def naming(self, site: str, room: str) -> Naming:
        """Names and kind from the display config; an unlisted room is an open one."""
        listed = self.listed.get((site, room))
        return Naming(
            name=self.name(site, room),
            name_en=listed.name_en if listed is not None else None,
            site_name=self.settings.sites.get(site),
            kind=listed.room_kind if listed is not None else "open",
        )

    def take(self, topic: str, payload: object, *, retained: bool = False) -> None:
        """One MQTT message, never fatal: what it breaks is counted and it is skipped."""
        if not isinstance(payload, bytes | bytearray):
            return
        try:
            if self.on_message(topic, bytes(payload), retained=retained):
                self.refresh()
        except Exception as exc:
            name = type(exc).__name__
            self.handling_errors.labels(name).inc()
            if name not in self._errors_seen:  # once per kind; the metric counts the rest
                self._errors_seen.add(name)
                _LOGGER.exception("a message on %s could not be handled; skipped", topic[:200])

    def health(self) -> list[LoopHealth]:
        """Every loop's verdict (``health.Beat``); the ticker beats every second."""
        s = self.settings.stuck_after_s
        return [b.health(s, silent_ok=name != "ticker") for name, b in self.beats.items()]

    def on_message(self, topic: str, payload: bytes, *, retained: bool = False) -> bool:
        """Take one message; True when a room's state changed."""
        self.messages.inc()
        result = check(topic, payload, self.prefix, now=self.clock(), window=self.window)
        if not isinstance(result, Accepted):
            return False
        env, sub = result.envelope, result.topic.sub
        key = (env.site, env.room)
        if key not in self.listed and not self.settings.show_unlisted:
            return False
        if env.kind in ("events", "alerts", "wifi", "health"):
            if env.kind == "health":
                live = self.rooms.setdefault(key, RoomLive(*key))
                live.last_seen = self._arrival(env.ts, retained, live.last_seen)
            return False  # not what residents see; health only says the gateway is alive
        live = self.rooms.setdefault(key, RoomLive(*key))
        live.last_seen = self._arrival(env.ts, retained, live.last_seen)
        data = env.data
        if isinstance(data, StatusData):
            live.online = data.online
        else:
            live.online = True if live.online is False else live.online
            live.updated = env.ts if live.updated is None else max(live.updated, env.ts)
        if isinstance(data, OccupancyData):
            live.occupancy = data
        elif isinstance(data, EnvironmentData):
            live.environment = data
            live.environment_at = live.last_seen
        elif isinstance(data, LockerData) and sub is not None:
            live.lockers[sub] = data
        return True

    def _arrival(self, ts: datetime, retained: bool, last: datetime | None) -> datetime:
        now = self.clock()
        at = min(ts, now) if retained else now
        return at if last is None else max(last, at)

    def refresh(self) -> list[tuple[str, str]]:
        """Re-derive every view; the keys whose view changed."""
        now = self.clock()
        changed = []
        for key, live in list(self.rooms.items()):
            calendar = self.calendars(key[0], key[1], now) if self.calendars else None
            info = view(live, self.naming(*key), now, self.view_settings, calendar)
            if info.status == "probably_free" and calendar is not None:
                self._no_show(key, calendar, now)
            if self.views.get(key) != info:
                self.views[key] = info
                changed.append(key)
        if changed:
            self.version += 1
        for listener in list(self.listeners):
            for key in changed:
                if listener.site in (None, key[0]):
                    try:
                        listener.changed.put_nowait(key)
                    except asyncio.QueueFull:
                        self.overflow(listener)
                        break
        return changed

    def overflow(self, listener: Listener) -> None:
        """A page too far behind: its stream ends (``/events``), the browser reconnects and
        gets the whole state; it must not stay open with keep-alives and never update."""
        listener.overflowed = True
        self.listeners.discard(listener)
        self.streams_overflowed.inc()

    def _no_show(self, key: tuple[str, str], calendar: Availability, now: datetime) -> None:
        start = calendar.current_booking_start
        if start is None or (key[0], key[1], start) in self.no_shows:
            return
        self.no_shows.add((key[0], key[1], start))
        _LOGGER.info("no-show in %s/%s: booking from %s, nobody there", *key, start)
        if self.publish is not None and self.settings.publish_no_shows:
            data = EventData(type="no_show", detail=f"booking from {start.isoformat()}")
            env = make_envelope(key[0], key[1], data, now, None)
            topic = f"{self.prefix}/{key[0]}/{key[1]}/events"
            self.publish(topic, env.model_dump_json(exclude_none=True).encode())

    def sorted_views(self, site: str | None = None) -> list[RoomInfo]:
        return [
            v
            for _, v in sorted(self.views.items(), key=lambda kv: (kv[0][0], kv[1].name))
            if site is None or v.site == site
        ]
