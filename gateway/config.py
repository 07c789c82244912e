"""Room configuration (TOML) validated by pydantic, with errors that name file and field.

Secrets may come from the environment instead of the file, so the file can be world-readable:
``LEARNROOM_MQTT_USERNAME``, ``LEARNROOM_MQTT_PASSWORD``, ``LEARNROOM_SITE_SECRET``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway import const
from gateway.agent.sources.satellites import SatellitesSection
from gateway.errors import ConfigError
from gateway.models import Slug

__all__ = ["ConfigError", "RoomConfig", "load_room_config", "parse_config", "parse_mqtt_url"]

T = TypeVar("T", bound=BaseModel)

Pin = Annotated[
    int | str, Field(description="BCM GPIO number (17) or gpiozero pin name ('GPIO17')")
]


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name such as 'Europe/Berlin'"
        ) from None
    return value


#: An IANA time zone name, checked when the config is read.
TimeZoneName = Annotated[str, AfterValidator(_known_zone)]

LockerId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")]


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


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


class MqttSection(_Config):
    #: Broker host name, or "auto" to find it through mDNS (``_mqtt._tcp.local.``).
    host: str = "localhost"
    port: int | None = Field(default=None, ge=1, le=65535)
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password: str | None = None
    prefix: str = const.TOPIC_PREFIX
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    #: Reconnect backoff: doubles from ``min`` up to ``max``, each wait jittered.
    reconnect_min_s: float = Field(default=1.0, gt=0)
    reconnect_max_s: float = Field(default=60.0, gt=0)
    #: After the broker rejects our credentials we wait this long before trying again.
    auth_retry_s: float = Field(default=300.0, gt=0)

    @model_validator(mode="after")
    def _client_cert_pair(self) -> MqttSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: set both or neither")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        return self

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return const.DEFAULT_MQTTS_PORT if self.tls else const.DEFAULT_MQTT_PORT


class OutboxSection(_Config):
    path: Path = Path("outbox.sqlite")
    #: Bound on stored messages; beyond it the oldest are dropped and counted.
    max_messages: int = Field(default=200_000, ge=10)
    #: Readings are committed together at most this often (fewer writes to the SD card).
    commit_interval_s: float = Field(default=1.0, gt=0, le=60)
    #: Acknowledged messages are deleted in bulk this often (whole pages freed at once);
    #: a crash re-sends at most this much (harmless: the central side is idempotent).
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


def apply_env(
    raw: dict[str, Any],
    environ: Mapping[str, str],
    overrides: Mapping[str, tuple[str, str]] = ENV_OVERRIDES,
) -> dict[str, Any]:
    """Overlay ``LEARNROOM_*`` secrets on the raw config."""
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for var, (section, key) in overrides.items():
        if section in OPTIONAL_SECTIONS and section not in merged:
            continue  # a secret alone must not switch a feature on
        if var in environ:
            merged.setdefault(section, {})[key] = environ[var]
    return merged


_HINTS = {
    "extra_forbidden": "remove it or check its spelling",
    "missing": "add it",
    "string_pattern_mismatch": "use lower-case letters, digits and dashes",
    "int_parsing": "write a whole number",
    "float_parsing": "write a number",
    "bool_parsing": "write true or false",
    "literal_error": "use one of the values named",
}


def format_errors(source: str, exc: ValidationError) -> list[str]:
    """One line per problem: ``file: field.path: what is wrong (got X); how to fix``."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif msg.startswith("Value error, "):
            msg = msg.removeprefix("Value error, ")
        hint = _HINTS.get(err["type"])
        got = ""
        if (
            err["type"] not in ("missing",)
            and "input" in err
            and not isinstance(err["input"], dict)
        ):
            got = f" (got {err['input']!r:.60})"
        lines.append(f"{source}: {loc}: {msg}{got}" + (f"; {hint}" if hint else ""))
    return lines


def parse_config(
    model: type[T],
    raw: dict[str, Any],
    source: str,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, tuple[str, str]] = ENV_OVERRIDES,
) -> T:
    """Validate a raw mapping; every problem goes into one ``ConfigError``."""
    data = apply_env(raw, os.environ if environ is None else environ, overrides)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(source, exc)) from exc


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError([f"{path}: file not found"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from exc
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc


def load_room_config(path: Path, environ: Mapping[str, str] | None = None) -> RoomConfig:
    config = parse_config(RoomConfig, load_toml(path), str(path), environ)
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


def parse_mqtt_url(url: str, base: MqttSection | None = None) -> MqttSection:
    """``mqtt://[user:pass@]host[:port]`` or ``mqtts://...`` over the config's MQTT section."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigError(
            [f"--mqtt {url!r}: expected mqtt://[user:pass@]host[:port] or mqtts://..."]
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError([f"--mqtt {url!r}: port is not a number 1-65535"]) from exc
    update: dict[str, Any] = {"host": parts.hostname, "port": port, "tls": parts.scheme == "mqtts"}
    if parts.username is not None:
        update["username"] = unquote(parts.username)
    if parts.password is not None:
        update["password"] = unquote(parts.password)
    merged = (base or MqttSection()).model_dump() | update
    return parse_config(MqttSection, merged, "--mqtt", environ={})
