"""A plausible day in a learning room, deterministic for a seed.

The world only decides what happens (people arrive, a window opens, a tablet is borrowed, the
Wi-Fi degrades); ``gateway.sim.room`` turns that into pin edges, I2C answers and ``iw`` output,
so the real sources and parsers run in simulation too.

Model, kept simple on purpose:
- arrivals are Poisson with a rate that follows opening hours (peaks late morning and
  afternoon), stays are exponential around an hour, everyone leaves at closing;
- CO2 is a one-box mass balance: each person breathes out about 18 l/h of CO2 (light
  activity), which in a 150 m³ room adds about 120 ppm per person-hour; air change 0.5/h with
  windows shut and 5/h open; someone opens a window when the air gets stuffy;
- a few devices a day are borrowed and returned after one to four hours, some too late;
- Wi-Fi degrades now and then for a quarter of an hour, and roams between two access points.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, time
from zoneinfo import ZoneInfo

OUTDOOR_CO2_PPM = 420.0
CO2_PER_PERSON_L_H = 18.0


@dataclass
class Loan:
    bank: str
    slot: str
    badge: str
    back_at: float  # world seconds


@dataclass
class WorldState:
    people: int = 0
    motion: bool = False
    seats_taken: int = 0
    window_open: bool = False
    co2_ppm: float = OUTDOOR_CO2_PPM + 30
    temperature_c: float = 20.5
    humidity_pct: float = 42.0
    wifi_degraded: bool = False
    ap_index: int = 0
    loans: list[Loan] = field(default_factory=list)


@dataclass(frozen=True)
class Happening:
    """One thing the hardware has to act out."""

    what: str  # enter, leave, borrow, return
    bank: str | None = None
    slot: str | None = None
    badge: str | None = None


class RoomWorld:
    def __init__(
        self,
        seed: int | str,
        *,
        capacity: int,
        seats: int,
        slots: list[tuple[str, str]],
        opens: time = time(8, 0),
        closes: time = time(20, 0),
        tz: ZoneInfo | None = None,
        volume_m3: float = 150.0,
        badges: int = 40,
    ) -> None:
        self.rng = random.Random(str(seed))
        self.capacity = max(capacity, 1)
        self.seats = seats
        self.slots = slots
        self.opens = opens
        self.closes = closes
        self.tz = tz or ZoneInfo("Europe/Berlin")
        self.volume_m3 = volume_m3
        self.badges = [f"04{self.rng.getrandbits(48):012X}" for _ in range(badges)]
        self.state = WorldState()
        self._stays: list[float] = []  # departure times (world seconds) of people present
        self._window_until = 0.0
        self._degraded_until = 0.0
        self.t = 0.0

    def is_open(self, now: datetime) -> bool:
        local = now.astimezone(self.tz).time()
        return self.opens <= local < self.closes

    def _arrival_rate_per_s(self, now: datetime) -> float:
        if not self.is_open(now):
            return 0.0
        local = now.astimezone(self.tz)
        hour = local.hour + local.minute / 60
        # two humps: late morning and afternoon, quieter at lunch and in the evening
        shape = 0.35 + math.exp(-((hour - 11) ** 2) / 3) + 0.9 * math.exp(-((hour - 15.5) ** 2) / 4)
        per_hour = 0.6 * self.capacity * shape
        return per_hour / 3600

    def step(self, now: datetime, dt: float) -> list[Happening]:
        """Advance ``dt`` world seconds to ``now``; return what the hardware must act out."""
        self.t += dt
        rng, st = self.rng, self.state
        out: list[Happening] = []
        open_now = self.is_open(now)
        # people
        still = []
        for leave_at in self._stays:
            if leave_at <= self.t or not open_now:
                out.append(Happening("leave"))
            else:
                still.append(leave_at)
        self._stays = still
        arrivals = _poisson(rng, self._arrival_rate_per_s(now) * dt)
        for _ in range(arrivals):
            if len(self._stays) < self.capacity:
                self._stays.append(self.t + rng.expovariate(1 / 3600) + 300)
                out.append(Happening("enter"))
        st.people = len(self._stays)
        st.seats_taken = min(st.people, self.seats)
        st.motion = st.people > 0 and rng.random() < 0.9
        # air
        if not st.window_open and st.co2_ppm > 1300 and rng.random() < dt / 600:
            st.window_open, self._window_until = True, self.t + rng.uniform(600, 1200)
        elif st.window_open and self.t >= self._window_until:
            st.window_open = False
        ach = (5.0 if st.window_open else 0.5) / 3600
        source = st.people * CO2_PER_PERSON_L_H / 3600 / (self.volume_m3 * 1000) * 1e6
        st.co2_ppm += dt * (source - ach * (st.co2_ppm - OUTDOOR_CO2_PPM))
        target_t = 20.5 + 0.08 * st.people - (2.5 if st.window_open else 0.0)
        st.temperature_c += (target_t - st.temperature_c) * min(1.0, dt / 1800)
        target_rh = 40 + 0.4 * st.people - (5 if st.window_open else 0)
        st.humidity_pct += (target_rh - st.humidity_pct) * min(1.0, dt / 1800)
        # lockers
        for loan in list(st.loans):
            if self.t >= loan.back_at and open_now:
                st.loans.remove(loan)
                out.append(Happening("return", loan.bank, loan.slot, loan.badge))
        lent = {(ln.bank, ln.slot) for ln in st.loans}
        free = [s for s in self.slots if s not in lent]
        if open_now and free and st.people and rng.random() < dt / 3600 * 1.5:
            bank, slot = rng.choice(free)
            badge = rng.choice(self.badges)
            late = rng.random() < 0.15
            back = rng.uniform(3600, 4 * 3600) + (6 * 3600 if late else 0)
            st.loans.append(Loan(bank, slot, badge, self.t + back))
            out.append(Happening("borrow", bank, slot, badge))
        # wifi
        if not st.wifi_degraded and rng.random() < dt / (6 * 3600):
            st.wifi_degraded, self._degraded_until = True, self.t + rng.uniform(600, 1500)
        elif st.wifi_degraded and self.t >= self._degraded_until:
            st.wifi_degraded = False
        if rng.random() < dt / (4 * 3600):
            st.ap_index = 1 - st.ap_index
        return out


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
