"""The room's configuration (TOML), validated by pydantic, with errors that name file and field.

Secrets may come from the environment instead of the file, so the file can be world-readable:
``LEARNROOM_MQTT_USERNAME``, ``LEARNROOM_MQTT_PASSWORD``, ``LEARNROOM_SITE_SECRET``,
``LEARNROOM_SATELLITES_PASSWORD``. Every section is here, the satellites' too, so that the
sources import their settings from this module and never the other way round.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, Field, StringConstraints, field_validator, model_validator

from gateway import const
from gateway.config import MqttSection, TimeZoneName, _Config, load_toml, parse_config
from gateway.errors import ConfigError
from gateway.models import Slug

__all__ = [
    "ConfigError",
    "NodeOverride",
    "RoomConfig",
    "SatellitesSection",
    "load_room_config",
    "parse_room_config",
]

Pin = Annotated[
    int | str, Field(description="BCM GPIO number (17) or gpiozero pin name ('GPIO17')")
]

LockerId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")]


class RoomSection(_Config):
    site: Slug
    room: Slug
    #: Shown on displays; defaults to the room slug.
    name: str | None = None
    capacity: int = Field(default=0, ge=0, description="people allowed in the room")
    timezone: TimeZoneName = "Europe/Berlin"
    #: Opening hours; the loan due time "closing" uses ``closes``.
    opens: time = time(8, 0)
    closes: time = time(20, 0)

    @model_validator(mode="after")
    def _hours(self) -> RoomSection:
        if self.opens >= self.closes:
            raise ValueError("opens must be before closes (rooms open and close on one day)")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class OutboxSection(_Config):
    path: Path = Path("outbox.sqlite")
    #: Bound on stored messages; beyond it the oldest are dropped and counted.
    max_messages: int = Field(default=200_000, ge=10)
    #: Readings are committed together at most this often (fewer writes to the SD card).
    commit_interval_s: float = Field(default=1.0, gt=0, le=60)
    #: Acknowledged messages are deleted in bulk this often (whole pages freed at once);
    #: the seq mark lists PUBACKs within ``commit_interval_s``, so a crash re-sends only
    #: what was acknowledged after the last commit (harmless: the central side is idempotent).
    delete_interval_s: float = Field(default=30.0, gt=0, le=600)
    #: Messages awaiting PUBACK at once.
    inflight: int = Field(default=32, ge=1, le=1000)
    #: Backlog replay rate after a reconnect (messages/s), so that many rooms coming back at
    #: once do not flood the broker; the current state goes first, unpaced.
    replay_rate: float = Field(default=100.0, gt=0)
    #: Random delay before the replay starts, spreading rooms that reconnect together.
    replay_jitter_s: float = Field(default=5.0, ge=0)


class AgentSection(_Config):
    #: How often periodic sources report; the central side calls a gateway offline after
    #: three intervals without a message (DESIGN.md).
    report_interval_s: float = Field(default=30.0, gt=0)
    wifi_interval_s: float = Field(default=60.0, gt=0)
    health_interval_s: float = Field(default=60.0, gt=0)
    #: mDNS advertisement of this gateway as ``_learnroom._tcp.local.``.
    advertise: bool = True


class OccupancySection(_Config):
    pir_pins: list[Pin] = Field(default_factory=list)
    hold_time_s: float = Field(default=const.OCCUPANCY_HOLD_S, ge=0)
    #: Two break-beams at the door: ``outer`` is on the corridor side.
    beam_outer_pin: Pin | None = None
    beam_inner_pin: Pin | None = None
    #: A crossing must complete within this time to count.
    beam_window_s: float = Field(default=2.0, gt=0)
    #: Hour of the day (local) at which the people count is reset to zero.
    reset_hour: int | None = Field(default=3, ge=0, le=23)
    seat_pins: list[Pin] = Field(default_factory=list)
    #: Seat sensors are pressure mats or IR sensors: "high" means taken unless inverted.
    seat_active_high: bool = True

    @model_validator(mode="after")
    def _beams_paired(self) -> OccupancySection:
        if (self.beam_outer_pin is None) != (self.beam_inner_pin is None):
            raise ValueError("beam_outer_pin and beam_inner_pin go together: set both or neither")
        return self


class SlotConfig(_Config):
    slot: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    present_pin: Pin
    charging_pin: Pin | None = None


class LockerConfig(_Config):
    id: LockerId
    door_pin: Pin
    #: Door relay (an electric strike) opened for an allowed badge.
    relay_pin: Pin | None = None
    relay_open_s: float = Field(default=5.0, gt=0, le=60)
    slots: list[SlotConfig] = Field(min_length=1)


class BadgeSection(_Config):
    #: evdev device of a USB reader that types like a keyboard; "stdin" reads lines instead.
    device: str = "stdin"
    #: "any" opens for every badge; otherwise a list of allowed pseudonyms (see
    #: ``learnroom pseudonym``), so that no clear badge ID is stored on the gateway.
    allow: Literal["any"] | list[str] = "any"

    @field_validator("allow")
    @classmethod
    def _pseudonyms_only(cls, value: Literal["any"] | list[str]) -> Literal["any"] | list[str]:
        if isinstance(value, list):
            for i, item in enumerate(value):
                if not re.fullmatch(r"[0-9a-f]{32}", item):
                    raise ValueError(
                        f"allow[{i}] {item[:6]!r}... is not a pseudonym: list the output of "
                        "`learnroom pseudonym BADGE-ID`, never the badge ID itself"
                    )
        return value


class LockersSection(_Config):
    #: "closing": due at the room's closing time; "hours": after ``loan_hours``.
    loan_due: Literal["closing", "hours"] = "closing"
    loan_hours: float = Field(default=4.0, gt=0)
    banks: list[LockerConfig] = Field(default_factory=list)
    badge: BadgeSection | None = None


class SensorConfig(_Config):
    type: Literal["scd4x", "sht4x", "sht3x", "bme280"]
    bus: int = Field(default=1, ge=0)
    address: int | None = Field(default=None, ge=0x03, le=0x77)


class EnvironmentSection(_Config):
    sensors: list[SensorConfig] = Field(default_factory=list)
    #: A value unchanged for this long is "stuck" (calibration suspect, or a hung sensor).
    stuck_after_s: float = Field(default=3 * 3600.0, gt=0)


class WifiSection(_Config):
    interface: str = "wlan0"
    #: Probe targets besides the default gateway.
    ping_host: str | None = "9.9.9.9"
    ping_count: int = Field(default=5, ge=1, le=100)
    dns_name: str | None = "example.org"
    #: A captive-portal check: a URL that answers HTTP 204 when the Internet is reachable.
    portal_url: str | None = "http://connectivitycheck.gstatic.com/generate_204"
    timeout_s: float = Field(default=5.0, gt=0)


class PrivacySection(_Config):
    #: Key of the HMAC that turns badge IDs into pseudonyms; the same for a whole site.
    site_secret: str | None = Field(default=None, min_length=16)


# -- satellites: ESPHome nodes on the Pi's local broker (agent/sources/satellites.py) ----

EnvField = Literal["co2_ppm", "temperature_c", "humidity_pct", "noise_dba", "illuminance_lux"]
ENV_FIELDS: Final[tuple[EnvField, ...]] = (
    "co2_ppm",
    "temperature_c",
    "humidity_pct",
    "noise_dba",
    "illuminance_lux",
)
Reading = Literal["environment", "lockers", "occupancy"]
READINGS: Final[tuple[Reading, ...]] = ("environment", "lockers", "occupancy")


def _all_readings() -> list[Reading]:
    return list(READINGS)


# -- config --------------------------------------------------------------------------------


def _target(value: str) -> str:
    fixed = {*ENV_FIELDS, "door", "people", "people_in", "people_out", "uptime", "problem"}
    if value in fixed or value == "ignore":
        return value
    kind, _, slot = value.partition(":")
    if kind in ("slot", "charging") and re.fullmatch(r"[A-Za-z0-9_-]{1,32}", slot):
        return value
    raise ValueError(
        f"unknown target {value!r}; use one of {', '.join(sorted(fixed))}, ignore, "
        "slot:<slot id> or charging:<slot id>"
    )


#: Where one entity's value goes: an environment field, ``door``, ``slot:<id>``,
#: ``charging:<id>``, ``people``, ``people_in``, ``people_out``, ``uptime``, ``problem`` or
#: ``ignore``.
Target = Annotated[str, AfterValidator(_target)]
NodeName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,63}$")]
ObjectId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,128}$")]


class NodeOverride(_Config):
    """What to do with one node where the discovery-based mapping is not what the room needs."""

    #: Leave the node out entirely (a node on the bench, a test board).
    ignore: bool = False
    #: Publish this node's slots and door as this locker id instead of the node name.
    locker: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
    #: object_id → target, e.g. ``{"co2_scd30" = "co2_ppm", "wifi_signal" = "ignore"}``.
    entities: dict[ObjectId, Target] = Field(default_factory=dict)


class SatellitesSection(_Config):
    #: The gateway's local Mosquitto that the nodes publish to.
    broker: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: str | None = None
    client_id: str = "learnroom-gateway-satellites"
    #: ESPHome ``mqtt: discovery_prefix``.
    discovery_prefix: str = Field(default="homeassistant", pattern=r"^[^#+]+$")
    #: Where the nodes' state and status topics live (ESPHome ``topic_prefix``:
    #: ``learnroom-sat/<node>``).
    topic_filter: str = "learnroom-sat/#"
    #: A node with no live message for this long is silent (its sensors report every 60 s).
    silent_after_s: float = Field(default=180.0, gt=0)
    #: Readings this source publishes; drop one when the Pi's own pins or I2C already do.
    readings: list[Reading] = Field(default_factory=_all_readings)
    #: Occupied turns free only after this long without people counted (DESIGN.md).
    hold_time_s: float = Field(default=const.OCCUPANCY_HOLD_S, ge=0)
    #: Local hour at which the door counters' people count is set to zero (drift, missed exits).
    reset_hour: int | None = Field(default=3, ge=0, le=23)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    nodes: dict[NodeName, NodeOverride] = Field(default_factory=dict)

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        parts = urlsplit(value)
        try:
            port_ok = parts.port is None or 1 <= parts.port <= 65535
        except ValueError:
            port_ok = False
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or not port_ok:
            raise ValueError(
                f"broker {value!r} is not a broker URL; write mqtt://host[:port] (the local "
                "Mosquitto is mqtt://127.0.0.1:1883) or mqtts://host[:port]"
            )
        return value

    @field_validator("topic_filter")
    @classmethod
    def _filter(cls, value: str) -> str:
        levels = value.split("/")
        bad_hash = any(
            "#" in lv and (lv != "#" or i != len(levels) - 1) for i, lv in enumerate(levels)
        )
        if not value or bad_hash or any("+" in lv and lv != "+" for lv in levels):
            raise ValueError(
                f"topic_filter {value!r} is not an MQTT topic filter; e.g. learnroom-sat/#"
            )
        return value

    @property
    def endpoint(self) -> tuple[str, int, bool, str | None, str | None]:
        """Host, port, TLS, user, password; credentials in the URL win over the fields."""
        parts = urlsplit(self.broker)
        tls = parts.scheme == "mqtts"
        port = parts.port or (const.DEFAULT_MQTTS_PORT if tls else const.DEFAULT_MQTT_PORT)
        user = unquote(parts.username) if parts.username else self.username
        password = unquote(parts.password) if parts.password else self.password
        return parts.hostname or "127.0.0.1", port, tls, user, password


class RoomConfig(_Config):
    room: RoomSection
    mqtt: MqttSection = MqttSection()
    outbox: OutboxSection = OutboxSection()
    agent: AgentSection = AgentSection()
    occupancy: OccupancySection = OccupancySection()
    lockers: LockersSection = LockersSection()
    environment: EnvironmentSection = EnvironmentSection()
    wifi: WifiSection | None = None
    privacy: PrivacySection = PrivacySection()
    #: ESPHome nodes on the Pi's local Mosquitto (firmware_configs/); absent: none.
    satellites: SatellitesSection | None = None

    @model_validator(mode="after")
    def _cross_checks(self) -> RoomConfig:
        pins: dict[str, str] = {}

        def claim(pin: int | str | None, where: str) -> None:
            if pin is None:
                return
            key = str(pin).upper().removeprefix("GPIO").removeprefix("BCM")
            if key in pins:
                raise ValueError(f"pin {pin} is used twice: by {pins[key]} and by {where}")
            pins[key] = where

        occ = self.occupancy
        for i, pin in enumerate(occ.pir_pins):
            claim(pin, f"occupancy.pir_pins[{i}]")
        claim(occ.beam_outer_pin, "occupancy.beam_outer_pin")
        claim(occ.beam_inner_pin, "occupancy.beam_inner_pin")
        for i, pin in enumerate(occ.seat_pins):
            claim(pin, f"occupancy.seat_pins[{i}]")
        ids: set[str] = set()
        for b, bank in enumerate(self.lockers.banks):
            if bank.id in ids:
                raise ValueError(f"lockers.banks[{b}].id {bank.id!r} is used twice")
            ids.add(bank.id)
            claim(bank.door_pin, f"lockers.banks[{b}].door_pin")
            claim(bank.relay_pin, f"lockers.banks[{b}].relay_pin")
            slots: set[str] = set()
            for s, slot in enumerate(bank.slots):
                if slot.slot in slots:
                    raise ValueError(
                        f"lockers.banks[{b}].slots[{s}].slot {slot.slot!r} is used twice"
                    )
                slots.add(slot.slot)
                claim(slot.present_pin, f"lockers.banks[{b}].slots[{s}].present_pin")
                claim(slot.charging_pin, f"lockers.banks[{b}].slots[{s}].charging_pin")
        sat = self.satellites
        if sat is not None:
            own = {
                "environment": bool(self.environment.sensors),
                "occupancy": bool(occ.pir_pins or occ.beam_outer_pin is not None),
                "lockers": bool(self.lockers.banks),
            }
            both = [kind for kind in sat.readings if own.get(kind)]
            if both:
                raise ValueError(
                    f"satellites.readings and the Pi's own {' and '.join(both)} would publish "
                    f"two alternating {both[0]} streams; leave {both[0]!r} out of "
                    "satellites.readings, or remove the Pi's own"
                )
        if self.lockers.badge is not None and not self.privacy.site_secret:
            raise ValueError(
                "a badge reader needs privacy.site_secret (or LEARNROOM_SITE_SECRET) so that "
                "badge IDs are pseudonymised before they leave the reader"
            )
        return self


#: Sections whose presence switches a feature on; the environment only fills them in.
OPTIONAL_SECTIONS = frozenset({"satellites"})

#: Environment variables that override a config field, so secrets stay out of files.
ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "LEARNROOM_MQTT_USERNAME": ("mqtt", "username"),
    "LEARNROOM_MQTT_PASSWORD": ("mqtt", "password"),
    "LEARNROOM_SITE_SECRET": ("privacy", "site_secret"),
    "LEARNROOM_SATELLITES_PASSWORD": ("satellites", "password"),
}


def parse_room_config(
    raw: dict[str, Any], source: str, environ: Mapping[str, str] | None = None
) -> RoomConfig:
    """Validate a room config read from ``source``, with the ``LEARNROOM_*`` secrets on top."""
    return parse_config(RoomConfig, raw, source, environ, ENV_OVERRIDES, OPTIONAL_SECTIONS)


def load_room_config(path: Path, environ: Mapping[str, str] | None = None) -> RoomConfig:
    config = parse_room_config(load_toml(path), str(path), environ)
    # Relative paths in the file are relative to the file, as users expect.
    out = config.outbox
    if not out.path.is_absolute():
        out = out.model_copy(update={"path": path.parent / out.path})
        config = config.model_copy(update={"outbox": out})
    m = config.mqtt
    files = {
        k: path.parent / v
        for k, v in (("ca_file", m.ca_file), ("cert_file", m.cert_file), ("key_file", m.key_file))
        if v is not None and not v.is_absolute()
    }
    if files:
        config = config.model_copy(update={"mqtt": m.model_copy(update=files)})
    return config
