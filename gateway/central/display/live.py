"""What residents may see of each room, from the retained MQTT state: no database needed.

A room's public view is derived, never stored: free or occupied (or booked, probably free
after a no-show, closed), free seats, devices to borrow, air quality as a band, and the
booking calendar's "free until" / "next free at". A gateway that is offline or silent for
three report intervals shows "no current data", never a stale "free". People counts below
``min_count`` become "a few" (DESIGN.md "Privacy").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from gateway import const
from gateway.models import EnvironmentData, LockerData, OccupancyData

Status = Literal["free", "occupied", "booked", "probably_free", "closed", "no_data"]
Kind = Literal["open", "bookable"]


class Air(StrEnum):
    GOOD = "good"
    VENTILATE = "ventilate"
    CRITICAL = "critical"
    UNKNOWN = "unknown"


def air_band(co2_ppm: float | None) -> Air:
    """The Umweltbundesamt's bands (DESIGN.md "Thresholds")."""
    if co2_ppm is None:
        return Air.UNKNOWN
    if co2_ppm < const.CO2_FINE_BELOW_PPM:
        return Air.GOOD
    if co2_ppm <= const.CO2_CRITICAL_ABOVE_PPM:
        return Air.VENTILATE
    return Air.CRITICAL


class Availability(Protocol):
    """What the booking calendar says (``gateway.central.display.calendars``), times only."""

    @property
    def open_now(self) -> bool: ...
    @property
    def booked_now(self) -> bool: ...
    @property
    def current_booking_start(self) -> datetime | None: ...
    @property
    def free_until(self) -> datetime | None: ...
    @property
    def next_free_at(self) -> datetime | None: ...
    @property
    def bookings_known(self) -> bool: ...
    @property
    def open_today(self) -> Sequence[tuple[datetime, datetime]]: ...
    @property
    def free_today(self) -> Sequence[tuple[datetime, datetime]]: ...


class TimeSpan(BaseModel):
    """From ``start`` to ``end``, local times of the room's zone."""

    start: datetime
    end: datetime


class RoomInfo(BaseModel):
    """One room as the public display and the JSON API show it."""

    site: str
    room: str
    name: str
    name_en: str | None = Field(default=None, description="the English name, when it has one")
    site_name: str | None = Field(
        default=None, description="the site's name from the display config; null when unnamed"
    )
    kind: Kind = Field(
        default="open",
        description="open: a learning space anyone may use, led by its free seats; "
        "bookable: a room groups book, led by booked or free and today's free times",
    )
    status: Status = Field(description="free, occupied, booked, probably_free, closed, no_data")
    #: False when the gateway is offline or silent: then no value below is current
    live: bool
    people: int | None = Field(
        default=None, description="people in the room; null when unknown or below min_count"
    )
    people_few: bool = Field(
        default=False, description="some people, fewer than the privacy minimum"
    )
    capacity: int | None = None
    seats_free: int | None = None
    seats_total: int | None = None
    devices_available: int | None = Field(
        default=None, description="devices in the lockers, ready to borrow"
    )
    devices_total: int | None = None
    air: Air = Air.UNKNOWN
    co2_ppm: float | None = None
    temperature_c: float | None = None
    booked_now: bool = False
    bookings_known: bool = Field(
        default=True,
        description="false while the room's booking calendar could not be read: a room "
        "shown free may be booked",
    )
    free_until: datetime | None = Field(
        default=None, description="free now and until then (next booking or closing)"
    )
    next_free_at: datetime | None = Field(
        default=None, description="not free now; free again from then"
    )
    open_today: list[TimeSpan] | None = Field(
        default=None, description="today's opening periods; null without a calendar or hours"
    )
    free_today: list[TimeSpan] | None = Field(
        default=None,
        description="today's free slots (open, not booked), past ones included; null while "
        "the bookings are unknown",
    )
    updated: datetime | None = Field(default=None, description="time of the newest reading")


@dataclass
class RoomLive:
    site: str
    room: str
    online: bool | None = None
    last_seen: datetime | None = None
    occupancy: OccupancyData | None = None
    environment: EnvironmentData | None = None
    environment_at: datetime | None = None
    lockers: dict[str, LockerData] = field(default_factory=dict)
    updated: datetime | None = None


@dataclass(frozen=True)
class ViewSettings:
    report_interval_s: float = 30.0
    min_count: int = 3
    no_show_after_s: float = 900.0


@dataclass(frozen=True)
class Naming:
    """What the display config says about a room besides its slugs."""

    name: str
    name_en: str | None = None
    site_name: str | None = None
    kind: Kind = "open"


def view(
    live: RoomLive,
    name: str | Naming,
    now: datetime,
    settings: ViewSettings,
    calendar: Availability | None = None,
) -> RoomInfo:
    silent_after = timedelta(seconds=const.OFFLINE_AFTER_INTERVALS * settings.report_interval_s)
    current = (
        live.online is not False
        and live.last_seen is not None
        and now - live.last_seen <= silent_after
        and live.occupancy is not None
    )
    naming = name if isinstance(name, Naming) else Naming(name)
    info = RoomInfo(
        site=live.site,
        room=live.room,
        name=naming.name,
        name_en=naming.name_en,
        site_name=naming.site_name,
        kind=naming.kind,
        status="no_data",
        live=current,
    )
    if calendar is not None:
        info.bookings_known = calendar.bookings_known
        info.open_today = [TimeSpan(start=s, end=e) for s, e in calendar.open_today]
        if calendar.bookings_known:  # else no times: they would ignore unknown bookings
            info.booked_now = calendar.booked_now
            info.free_until = calendar.free_until
            info.next_free_at = calendar.next_free_at
            info.free_today = [TimeSpan(start=s, end=e) for s, e in calendar.free_today]
    if not current:
        return info  # no counts, no air, nothing that could be stale
    info.updated = live.updated
    occ = live.occupancy
    assert occ is not None  # noqa: S101 - current implies it
    if occ.people is not None:
        few = 0 < occ.people < settings.min_count
        info.people, info.people_few = (None, True) if few else (occ.people, False)
    info.capacity = occ.capacity
    info.seats_free, info.seats_total = occ.seats_free, occ.seats_total
    slots = [s for lk in live.lockers.values() for s in lk.slots]
    if slots:
        info.devices_total = len(slots)
        info.devices_available = sum(1 for s in slots if s.present and s.charging is not False)
    env = live.environment
    fresh_env = live.environment_at is not None and now - live.environment_at <= silent_after
    if env is not None and fresh_env:
        info.air = air_band(env.co2_ppm)
        info.co2_ppm = env.co2_ppm
        info.temperature_c = env.temperature_c
    info.status = _status(occ.occupied, now, settings, calendar)
    return info


def _status(
    occupied: bool, now: datetime, settings: ViewSettings, calendar: Availability | None
) -> Status:
    if occupied:
        return "occupied"
    if calendar is None:
        return "free"
    if not calendar.open_now:
        return "closed"
    if calendar.booked_now:
        start = calendar.current_booking_start
        if start is not None and (now - start).total_seconds() >= settings.no_show_after_s:
            return "probably_free"  # booked, but nobody came
        return "booked"
    return "free"
