"""A whole simulated room: the world's day acted out on simulated hardware.

The sources are the real ones (``gateway.agent.sources``); only their hardware is simulated:
gpiozero's ``MockFactory`` pins, Sensirion chips on a simulated I2C bus, a radio that prints
``iw``/``ping`` output, and a badge reader fed from a queue.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import random
import shutil
import tempfile
from pathlib import Path

from gateway.agent.config import RoomConfig
from gateway.agent.sources.badge import QueueBadgeReader
from gateway.agent.sources.base import Source
from gateway.agent.sources.environment import EnvironmentSource
from gateway.agent.sources.lockers import LockersSource
from gateway.agent.sources.occupancy import OccupancySource
from gateway.agent.sources.wifi import WifiSource
from gateway.clock import Clock
from gateway.sim.i2c import AirConditions, SimBuses
from gateway.sim.pins import RoomPins, sim_factory
from gateway.sim.wifi import SimWifi, WifiConditions
from gateway.sim.world import Happening, RoomWorld

_LOGGER = logging.getLogger(__name__)

#: World seconds per simulation step.
STEP_S = 10.0
_APS = ("dc:a6:32:0b:5e:10", "dc:a6:32:0b:5e:20")


def _proc_dir(state_dir: Path, site: str, room: str) -> Path:
    """The simulated radio's /proc files live on tmpfs when there is one, as /proc does, so
    they do not count as the gateway's disk writes."""
    shm = Path("/dev/shm")  # noqa: S108 - a tmpfs
    if not shm.is_dir():
        return state_dir / f"sim-{site}-{room}"
    path = Path(tempfile.mkdtemp(prefix=f"learnroom-sim-{site}-{room}-", dir=shm))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


class SimulatedRoom:
    def __init__(self, config: RoomConfig, clock: Clock, *, seed: str, state_dir: Path) -> None:
        self.config = config
        self.clock = clock
        self.state_dir = state_dir
        room = config.room
        self.factory = sim_factory()
        self.pins = RoomPins(self.factory, config.occupancy, config.lockers)
        self.world = RoomWorld(
            f"{seed}-{room.site}-{room.room}",
            capacity=room.capacity or 20,
            seats=len(config.occupancy.seat_pins),
            slots=[(b.id, s.slot) for b in config.lockers.banks for s in b.slots],
            opens=room.opens,
            closes=room.closes,
            tz=room.tz,
        )
        self.rng = random.Random(f"{seed}-{room.site}-{room.room}-noise")
        self.air = AirConditions()
        self.radio = WifiConditions(ssid=f"{room.site[:20]}-public", bssid=_APS[0])
        self.wifi = SimWifi(self.radio, self.rng, _proc_dir(state_dir, room.site, room.room))
        self.badges = QueueBadgeReader()
        self._acts: set[asyncio.Task[None]] = set()
        self._apply_world()

    def sources(self) -> list[Source]:
        cfg, room, clock = self.config, self.config.room, self.clock
        sources: list[Source] = []
        occ = cfg.occupancy
        if occ.pir_pins or occ.beam_outer_pin is not None or occ.seat_pins:
            sources.append(
                OccupancySource(
                    occ, room.capacity, cfg.agent.report_interval_s, clock, self.factory, room.tz
                )
            )
        if cfg.lockers.banks:
            secret = (cfg.privacy.site_secret or "").encode()
            sources.append(
                LockersSource(
                    cfg.lockers,
                    room,
                    cfg.agent.report_interval_s,
                    clock,
                    self.factory,
                    badge_reader=self.badges if cfg.lockers.badge and secret else None,
                    secret=secret or None,
                    state_path=self.state_dir / f"loans-{room.site}-{room.room}.json",
                )
            )
        if cfg.environment.sensors:
            sources.append(
                EnvironmentSource(
                    cfg.environment,
                    cfg.agent.report_interval_s,
                    clock,
                    buses=SimBuses(self.air, clock=clock),
                )
            )
        if cfg.wifi is not None:
            sources.append(
                WifiSource(cfg.wifi, cfg.agent.wifi_interval_s, clock, **self.wifi.source_kwargs())
            )
        return sources

    def _apply_world(self) -> None:
        st = self.world.state
        self.pins.motion(st.motion)
        self.pins.seats_taken(st.seats_taken)
        noise = self.rng.gauss
        self.air.co2_ppm = max(400.0, st.co2_ppm + noise(0, 8))
        self.air.temperature_c = st.temperature_c + noise(0, 0.05)
        self.air.humidity_pct = min(100.0, max(0.0, st.humidity_pct + noise(0, 0.3)))
        r = self.radio
        r.bssid = _APS[st.ap_index]
        r.freq_mhz = 5180 if st.ap_index == 0 else 5500
        if st.wifi_degraded:
            r.rssi_dbm, r.loss_pct, r.latency_ms, r.jitter_ms, r.dns_ms = -79, 8.0, 90.0, 25.0, 650
            r.bitrate_mbps = 24.0
        else:
            load = st.people * 0.6
            r.rssi_dbm = -57 + noise(0, 2)
            r.loss_pct, r.latency_ms, r.jitter_ms = 0.0, 8.0 + load, 1.5 + load / 10
            r.dns_ms, r.bitrate_mbps = 15.0, 175.5
        r.portal_ok = not st.wifi_degraded or self.rng.random() < 0.5

    async def _act(self, h: Happening) -> None:
        bank, slot = h.bank or "", h.slot or ""
        if h.what == "borrow":
            if h.badge:
                self.badges.queue.put_nowait(h.badge)
            await self.clock.sleep(3)
            self.pins.door(bank, True)
            await self.clock.sleep(8)
            self.pins.take_device(bank, slot)
            await self.clock.sleep(5)
            self.pins.door(bank, False)
        elif h.what == "return":
            self.pins.door(bank, True)
            await self.clock.sleep(6)
            self.pins.return_device(bank, slot, charging=self.rng.random() > 0.1)
            await self.clock.sleep(4)
            self.pins.door(bank, False)

    async def run(self) -> None:
        """Play the day until cancelled."""
        try:
            while True:
                await self.clock.sleep(STEP_S)
                for h in self.world.step(self.clock.now(), STEP_S):
                    if h.what == "enter":
                        self.pins.person_enters()
                    elif h.what == "leave":
                        self.pins.person_leaves()
                    else:
                        task = asyncio.create_task(self._act(h), name=f"sim-{h.what}")
                        self._acts.add(task)
                        task.add_done_callback(self._acts.discard)
                self._apply_world()
        finally:
            for task in self._acts:
                task.cancel()
