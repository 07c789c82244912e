"""``learnroom display``: the resident display, its JSON API and live updates (SSE).

State comes from the retained MQTT topics alone (DESIGN.md "Flow"): a display that starts late
shows the present at once, and needs no database. Every change (a message, a gateway going
silent, a booking starting) re-derives the rooms' public views; each open page gets the cards
that changed, rendered server-side in its language, over Server-Sent Events.

The JSON API (``/api/rooms``) is described by FastAPI's OpenAPI document (``/openapi.json``)
and answers with an ETag and a short Cache-Control, for e-paper door signs that poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt
from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from gateway import __version__
from gateway.central.config import CentralConfig, DisplayRoom
from gateway.central.display.calendars import RoomCalendar
from gateway.central.display.i18n import SYMBOLS, TEXT, Words, negotiate
from gateway.central.display.live import Availability, RoomInfo, RoomLive, ViewSettings, view
from gateway.central.validate import Accepted, check
from gateway.config import tls_context
from gateway.models import (
    EnvironmentData,
    EventData,
    LockerData,
    OccupancyData,
    StatusData,
    make_envelope,
)

_LOGGER = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"

CalendarLookup = Callable[[str, str, datetime], Availability | None]


def card_id(site: str, room: str) -> str:
    return f"room-{site}--{room}"


@dataclass(eq=False)  # compared by identity: each open page is its own listener
class Listener:
    """One open page: its site filter, and the rooms that changed since it last looked."""

    site: str | None
    changed: asyncio.Queue[tuple[str, str]] = field(default_factory=lambda: asyncio.Queue(512))


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
            info = view(live, self.name(*key), now, self.view_settings, calendar)
            if info.status == "probably_free" and calendar is not None:
                self._no_show(key, calendar, now)
            if self.views.get(key) != info:
                self.views[key] = info
                changed.append(key)
        for listener in list(self.listeners):
            for key in changed:
                if listener.site in (None, key[0]):
                    try:
                        listener.changed.put_nowait(key)
                    except asyncio.QueueFull:
                        self.listeners.discard(listener)  # a stuck page: it reconnects
        return changed

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


# -- HTML ---------------------------------------------------------------------------------


class Pages:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.tz = ZoneInfo(hub.settings.timezone)
        self.env = Environment(
            loader=PackageLoader("gateway.central.display", "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def words(self, lang: str) -> Words:
        return Words(lang, self.tz)

    def card(self, info: RoomInfo, lang: str) -> str:
        now = self.hub.clock()
        w = self.words(lang)
        return self.env.get_template("card.html").render(
            r=info,
            name=self.hub.name(info.site, info.room, lang),
            w=w,
            t=w.t,
            symbols=SYMBOLS,
            availability=w.availability(info, now),
            updated=w.t["updated"].format(time=w.time(info.updated)) if info.updated else None,
        )

    def page(self, site: str | None, lang: str, kiosk: bool) -> str:
        hub = self.hub
        views = hub.sorted_views(site)
        sites = sorted({v.site for v in views} | ({site} if site else set()))
        free = sum(1 for v in views if v.status in ("free", "probably_free"))
        other = "en" if lang == "de" else "de"
        query = f"?lang={other}" + ("&kiosk=1" if kiosk else "")
        return self.env.get_template("page.html").render(
            lang=lang,
            t=TEXT[lang],
            site=site,
            sites=sites,
            site_names=hub.settings.sites,
            cards={s: [self.card(v, lang) for v in views if v.site == s] for s in sites},
            ids={s: [card_id(v.site, v.room) for v in views if v.site == s] for s in sites},
            summary=TEXT[lang]["summary"].format(free=free, total=len(views)),
            switch_href=query,
            kiosk=kiosk,
            kiosk_page_s=hub.settings.kiosk_page_s,
            per_page=hub.settings.kiosk_rooms_per_page,
            version=__version__,
        )


def etag_response(request: Request, payload: Any, max_age: int = 5) -> Response:  # noqa: ANN401
    body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    tag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": tag, "Cache-Control": f"public, max-age={max_age}"}
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


# -- the app ------------------------------------------------------------------------------


def _lifespan(
    hub: Hub, *, run_mqtt: bool
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """The app's background work: MQTT, the ticker, /metrics."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        metrics = None
        d = hub.settings
        if d.metrics_port:
            metrics, _ = start_http_server(d.metrics_port, d.metrics_host, registry=hub.registry)
        tasks = [
            asyncio.create_task(_ticker(hub, stop), name="display-ticker"),
            asyncio.create_task(_calendars(hub, stop), name="display-calendars"),
        ]
        if run_mqtt:
            tasks.append(asyncio.create_task(_mqtt(hub, stop), name="display-mqtt"))
        try:
            yield
        finally:
            stop.set()
            if metrics is not None:
                metrics.shutdown()
                metrics.server_close()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    return lifespan


def create_app(hub: Hub, *, run_mqtt: bool = True) -> FastAPI:
    pages = Pages(hub)

    lifespan = _lifespan(hub, run_mqtt=run_mqtt)

    app = FastAPI(
        title="learnroom rooms",
        version=__version__,
        description="Free learning rooms, seats and devices to borrow, live. Counts only: "
        "no personal data. Times are RFC 3339.",
        lifespan=lifespan,
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def lang_of(request: Request, lang: str | None) -> str:
        return negotiate(request.headers.get("accept-language"), lang)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index(request: Request, lang: str | None = None, kiosk: bool = False) -> str:
        return pages.page(None, lang_of(request, lang), kiosk)

    @app.get("/site/{site}", response_class=HTMLResponse, include_in_schema=False)
    async def site_page(
        request: Request, site: str, lang: str | None = None, kiosk: bool = False
    ) -> str:
        return pages.page(site, lang_of(request, lang), kiosk)

    @app.get("/events", include_in_schema=False)
    async def events(
        request: Request, site: str | None = None, lang: str | None = None
    ) -> StreamingResponse:
        language = lang_of(request, lang)
        listener = Listener(site)
        hub.listeners.add(listener)

        async def stream() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n\n"
                while True:
                    try:
                        key = await asyncio.wait_for(listener.changed.get(), 15)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        if await request.is_disconnected():
                            return
                        continue
                    info = hub.views.get(key)
                    if info is None:
                        continue
                    name = hub.name(info.site, info.room, language)
                    message = {
                        "id": card_id(*key),
                        "site": info.site,
                        "html": pages.card(info, language),
                        "announce": TEXT[language]["announce"].format(
                            name=name, status=TEXT[language][info.status]
                        ),
                    }
                    hub.updates_sent.inc()
                    yield f"event: room\ndata: {json.dumps(message)}\n\n"
            finally:
                hub.listeners.discard(listener)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get(
        "/api/rooms",
        response_model=list[RoomInfo],
        summary="Every room, live",
        responses={304: {"description": "unchanged since the ETag sent"}},
    )
    async def api_rooms(
        request: Request, site: str | None = Query(default=None, description="only this site")
    ) -> Response:
        views = [v.model_dump(mode="json") for v in hub.sorted_views(site)]
        return etag_response(request, views)

    @app.get(
        "/api/rooms/{site}/{room}",
        response_model=RoomInfo,
        summary="One room, live",
        responses={304: {"description": "unchanged"}, 404: {"description": "unknown room"}},
    )
    async def api_room(request: Request, site: str, room: str) -> Response:
        info = hub.views.get((site, room))
        if info is None:
            raise HTTPException(404, f"no room {site}/{room}")
        return etag_response(request, info.model_dump(mode="json"))

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        return {"rooms": len(hub.views), "listeners": len(hub.listeners)}

    return app


async def _calendars(hub: Hub, stop: asyncio.Event) -> None:
    """Reload the booking calendars now and then; a failure keeps the last good data."""
    while not stop.is_set():
        for key, cal in list(hub.calendar_objects.items()):
            room = hub.listed.get(key)
            if room is None or not room.calendar:
                continue  # opening hours only: nothing to load
            if not await cal.aload(hub.clock()):
                _LOGGER.warning("calendar of %s/%s: %s", *key, cal.last_error)
        hub.refresh()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), hub.settings.calendar_refresh_s)


async def _ticker(hub: Hub, stop: asyncio.Event) -> None:
    """Time changes views too: a gateway falls silent, a booking starts."""
    while not stop.is_set():
        hub.refresh()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


def _publisher(client: aiomqtt.Client) -> Callable[[str, bytes], None]:
    """Publish from sync code (the hub) without waiting for the PUBACK."""
    pending: set[asyncio.Task[None]] = set()

    def publish(topic: str, payload: bytes) -> None:
        task = asyncio.get_running_loop().create_task(client.publish(topic, payload, qos=1))
        pending.add(task)
        task.add_done_callback(pending.discard)

    return publish


async def _mqtt(hub: Hub, stop: asyncio.Event) -> None:
    m = hub.config.mqtt
    while not stop.is_set():
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
                async for msg in client.messages:
                    payload = msg.payload
                    if isinstance(payload, bytes | bytearray) and hub.on_message(
                        str(msg.topic), bytes(payload), retained=msg.retain
                    ):
                        hub.refresh()
        except aiomqtt.MqttError as exc:
            hub.publish = None
            _LOGGER.warning("display lost the broker (%s); reconnecting", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), m.reconnect_min_s)
