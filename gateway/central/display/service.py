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
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape

from gateway import __version__
from gateway.central.display.hub import Hub, Listener
from gateway.central.display.i18n import SYMBOLS, TEXT, Words, look, negotiate
from gateway.central.display.live import RoomInfo
from gateway.central.display.loops import lifespan
from gateway.central.health import health_body

__all__ = ["Hub", "Pages", "card_id", "create_app", "etag_response"]

_LOGGER = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


def card_id(site: str, room: str) -> str:
    return f"room-{site}--{room}"


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
        shown, headline = w.headline(info)
        slots = None
        if info.kind == "bookable" and info.free_today is not None and info.status != "no_data":
            slots = [(s, s.start <= now) for s in info.free_today if s.end > now]
        return self.env.get_template("card.html").render(
            r=info,
            name=self.hub.name(info.site, info.room, lang),
            w=w,
            t=w.t,
            look=shown,
            headline=headline,
            symbols=SYMBOLS,
            availability=w.availability(info, now),
            slots=slots,
            timeline=timeline(info, now) if slots is not None else None,
            updated=w.t["updated"].format(time=w.time(info.updated)) if info.updated else None,
        )

    def page(self, site: str | None, lang: str, kiosk: bool) -> str:
        hub = self.hub
        views = hub.sorted_views(site)
        sites = sorted({v.site for v in views} | ({site} if site else set()))
        free = sum(1 for v in views if shows_free(v))
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
            state=hub.version,
        )

    def event(self, info: RoomInfo, lang: str, *, announce: bool = True) -> str:
        """One card as a Server-Sent Event; ``announce`` for the page's live region."""
        name = self.hub.name(info.site, info.room, lang)
        status = self.words(lang).headline(info)[1]
        message = {
            "id": card_id(info.site, info.room),
            "site": info.site,
            "html": self.card(info, lang),
            "announce": TEXT[lang]["announce"].format(name=name, status=status) if announce else "",
        }
        return f"event: room\ndata: {json.dumps(message)}\n\n"


def shows_free(info: RoomInfo) -> bool:
    """Counted as free in the page's summary: a free room, or an open space with a seat."""
    return look(info) in ("free", "probably_free")


@dataclass(frozen=True)
class Timeline:
    """Today's opening time as a bar: free stretches and now, in percent of the day's span."""

    opens: datetime
    closes: datetime
    free: list[tuple[float, float]]
    now: float | None


def timeline(info: RoomInfo, now: datetime) -> Timeline | None:
    """The bookable room's day, drawn (decoration: the list beside it says the same)."""
    if not info.open_today:
        return None
    opens, closes = info.open_today[0].start, info.open_today[-1].end
    start = opens.astimezone(UTC)  # durations in UTC: a wall clock jumps on DST days
    span = (closes.astimezone(UTC) - start).total_seconds()
    if span <= 0:
        return None

    def pct(t: datetime) -> float:
        part = (t.astimezone(UTC) - start).total_seconds() / span
        return round(max(0.0, min(1.0, part)) * 100, 2)

    free = [(pct(s.start), pct(s.end) - pct(s.start)) for s in info.free_today or []]
    return Timeline(opens, closes, free, pct(now) if opens <= now <= closes else None)


def etag_response(request: Request, payload: Any, max_age: int = 5) -> Response:  # noqa: ANN401
    body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    tag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": tag, "Cache-Control": f"public, max-age={max_age}"}
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


# -- the app ------------------------------------------------------------------------------


def create_app(hub: Hub, *, run_mqtt: bool = True) -> FastAPI:
    pages = Pages(hub)
    app = FastAPI(
        title="learnroom rooms",
        version=__version__,
        description="Free learning rooms, seats and devices to borrow, live. Counts only: "
        "no personal data. Times are RFC 3339.",
        lifespan=lifespan(hub, run_mqtt=run_mqtt),
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
        request: Request, site: str | None = None, lang: str | None = None, since: int = -1
    ) -> StreamingResponse:
        """Changed cards as they change. ``since`` is the state the page was rendered at
        (``data-state``): a page that reconnects (after its stream was closed for falling
        behind, or a network break) or was rendered before a change first gets every card."""
        language = lang_of(request, lang)
        listener = Listener(site, asyncio.Queue(hub.settings.stream_queue))
        hub.listeners.add(listener)
        whole = since != hub.version

        async def stream() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n\n"
                if whole:
                    for room in hub.sorted_views(site):
                        yield pages.event(room, language, announce=False)
                while not listener.ended():  # an overflowed stream ends: the page reconnects
                    try:
                        key = await asyncio.wait_for(listener.changed.get(), 15)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        if await request.is_disconnected():
                            return
                        continue
                    info = hub.views.get(key)
                    if info is not None and not listener.ended():
                        hub.updates_sent.inc()
                        yield pages.event(info, language)
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
    async def healthz() -> Response:
        """The loops' verdict as on the metrics port (200 or 503), with rooms and pages."""
        extra = {"rooms": len(hub.views), "listeners": len(hub.listeners)}
        ok, body = health_body(hub.health(), extra)
        headers = {"Cache-Control": "no-store"}
        return Response(body, 200 if ok else 503, headers, media_type="application/json")

    return app
