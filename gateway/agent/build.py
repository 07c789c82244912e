"""Wiring: config + hardware (real or simulated) → sources → agent.

This is the only place that decides between real hardware and the simulation, so that every
source stays unaware of it (STYLE.md "Hardware and I/O behind seams").
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime
from typing import Any

from gateway import __version__
from gateway.agent.config import RoomConfig, parse_room_config
from gateway.agent.outbox import Outbox
from gateway.agent.runner import Agent
from gateway.agent.sources.base import Source
from gateway.agent.sources.health import HealthSource
from gateway.clock import Clock, RealClock, ScaledClock

_LOGGER = logging.getLogger(__name__)

#: Used only by simulated rooms; a real site sets its own (LEARNROOM_SITE_SECRET).
SIMULATION_SECRET = "simulation-only-secret-not-for-production"  # noqa: S105 - public on purpose


def simulated_room_config(site: str, room: str) -> RoomConfig:
    """The room ``--simulate`` plays when no config file is given: one of everything."""
    return parse_room_config(
        {
            "room": {
                "site": site,
                "room": room,
                "name": room.replace("-", " ").title(),
                "capacity": 24,
            },
            "agent": {"report_interval_s": 30, "wifi_interval_s": 60, "health_interval_s": 60},
            "occupancy": {
                "pir_pins": [17],
                "beam_outer_pin": 5,
                "beam_inner_pin": 6,
                "seat_pins": [12, 13, 16, 19, 20, 21, 26, 7],
            },
            "lockers": {
                "loan_due": "closing",
                "banks": [
                    {
                        "id": "a",
                        "door_pin": 22,
                        "relay_pin": 27,
                        "slots": [
                            {"slot": "1", "present_pin": 23, "charging_pin": 24},
                            {"slot": "2", "present_pin": 25, "charging_pin": 8},
                            {"slot": "3", "present_pin": 9, "charging_pin": 10},
                            {"slot": "4", "present_pin": 11, "charging_pin": 4},
                        ],
                    }
                ],
                "badge": {"device": "stdin", "allow": "any"},
            },
            "environment": {"sensors": [{"type": "scd4x"}, {"type": "sht4x"}]},
            "wifi": {"interface": "wlan0"},
            "privacy": {"site_secret": SIMULATION_SECRET},
        },
        "simulated room",
        environ={},
    )


def _clock(simulate: bool, speed: float, start: datetime | None) -> Clock:
    if not simulate and speed == 1.0 and start is None:
        return RealClock()
    return ScaledClock(start, speed)


@contextlib.asynccontextmanager
async def build_agent(
    config: RoomConfig,
    *,
    simulate: bool,
    speed: float = 1.0,
    seed: str = "1",
    start: datetime | None = None,
) -> AsyncIterator[Agent]:
    """An agent with its outbox open and its sources built; closes the outbox afterwards."""
    if not simulate and (speed != 1.0 or start is not None):
        raise ValueError("--speed and --start only make sense with --simulate")
    clock = _clock(simulate, speed, start)
    outbox = Outbox(config.outbox.path, config.outbox.max_messages)
    outbox.open()
    try:
        extra: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = []
        if simulate:
            from gateway.sim.room import SimulatedRoom  # noqa: PLC0415

            sim = SimulatedRoom(config, clock, seed=seed, state_dir=config.outbox.path.parent)
            sources = sim.sources()
            extra.append(("simulation", sim.run))
        else:
            sources = _real_sources(config, clock)
        _join_occupancy(sources)
        satellites = None
        if config.satellites is not None and not simulate:  # no local broker in a simulation
            from gateway.agent.sources.satellites import SatellitesSource  # noqa: PLC0415

            satellites = SatellitesSource(
                config.satellites,
                config.room.capacity,
                config.agent.report_interval_s,
                clock,
                config.room.tz,
            )
            sources.append(satellites)
        resolve = None
        if config.mqtt.host == "auto":
            from gateway.agent.discovery import find_broker  # noqa: PLC0415

            resolve = find_broker
        agent = Agent(
            config,
            outbox,
            sources,
            clock,
            resolve_host=resolve,
            extra_tasks=extra,
            rng=random.Random(),
        )
        agent.sources.append(
            HealthSource(
                config.agent.health_interval_s,
                clock,
                outbox_stats=agent.outbox_stats,
                faults=lambda: agent.faults + (satellites.faults() if satellites else []),
                disk_path=config.outbox.path.parent,
            )
        )
        if config.agent.advertise:
            from gateway.agent.discovery import Advertiser  # noqa: PLC0415

            advertiser = Advertiser(config.room.site, config.room.room, __version__)
            agent.add_task("mdns-advertise", advertiser.run)
        else:
            _LOGGER.info(
                "not advertising this gateway over mDNS (agent.advertise is off; a simulated "
                "room advertises only with --advertise)"
            )
        yield agent
    finally:
        outbox.close()


def _join_occupancy(sources: list[Source]) -> None:
    """Let each environment reading carry the room's occupied state (issue 15): the agent is
    the one place that knows both at the moment of the reading; InfluxQL cannot join them
    later."""
    from gateway.agent.sources.environment import EnvironmentSource  # noqa: PLC0415
    from gateway.agent.sources.occupancy import OccupancySource  # noqa: PLC0415

    occupancy = next((s for s in sources if isinstance(s, OccupancySource)), None)
    if occupancy is None:
        return
    occ = occupancy  # bound for the closure

    def occupied() -> bool | None:
        # the hold's state is the one the occupancy source last reported; before its pins
        # are open it has read nothing, so the state is unknown rather than "free"
        return occ.hold.occupied if occ.opened.is_set() else None

    for source in sources:
        if isinstance(source, EnvironmentSource):
            source.occupied = occupied


def _real_sources(config: RoomConfig, clock: Clock) -> list[Source]:
    """Sources on the Pi's own hardware; drivers import their hardware modules lazily."""
    from gateway.agent.drivers.i2c import LinuxBuses  # noqa: PLC0415
    from gateway.agent.sources.badge import (  # noqa: PLC0415
        BadgeReader,
        EvdevBadgeReader,
        StdinBadgeReader,
    )
    from gateway.agent.sources.environment import EnvironmentSource  # noqa: PLC0415
    from gateway.agent.sources.lockers import LockersSource  # noqa: PLC0415
    from gateway.agent.sources.occupancy import OccupancySource  # noqa: PLC0415
    from gateway.agent.sources.wifi import WifiSource  # noqa: PLC0415

    room, occ = config.room, config.occupancy
    pin_factory = None  # gpiozero's default: lgpio on a Raspberry Pi
    sources: list[Source] = []
    if occ.pir_pins or occ.beam_outer_pin is not None or occ.seat_pins:
        sources.append(
            OccupancySource(
                occ, room.capacity, config.agent.report_interval_s, clock, pin_factory, room.tz
            )
        )
    if config.lockers.banks:
        reader: BadgeReader | None = None
        badge = config.lockers.badge
        if badge is not None:
            reader = (
                StdinBadgeReader() if badge.device == "stdin" else EvdevBadgeReader(badge.device)
            )
        secret = (config.privacy.site_secret or "").encode() or None
        sources.append(
            LockersSource(
                config.lockers,
                room,
                config.agent.report_interval_s,
                clock,
                pin_factory,
                badge_reader=reader,
                secret=secret,
                state_path=config.outbox.path.parent / "loans.json",
            )
        )
    if config.environment.sensors:
        sources.append(
            EnvironmentSource(
                config.environment, config.agent.report_interval_s, clock, buses=LinuxBuses()
            )
        )
    if config.wifi is not None:
        sources.append(WifiSource(config.wifi, config.agent.wifi_interval_s, clock))
    return sources
