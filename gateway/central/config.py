"""Central configuration (``central.toml``): broker, InfluxDB and the central services.

One file serves ingest, alerts and display, so that a site runs them from one place. Secrets
may come from the environment instead (DESIGN.md "CLI"): ``LEARNROOM_MQTT_USERNAME``,
``LEARNROOM_MQTT_PASSWORD``, ``LEARNROOM_INFLUX_USERNAME``, ``LEARNROOM_INFLUX_PASSWORD``,
``LEARNROOM_INFLUX_TOKEN``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway import const
from gateway.central.hours import OpeningHours
from gateway.central.thresholds import RULE_NAMES, Rules
from gateway.central.validate import Window
from gateway.config import (
    MqttSection,
    TimeZoneName,
    _Config,
    load_toml,
    parse_config,
    state_home,
)
from gateway.errors import ConfigError
from gateway.models import Slug

ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "LEARNROOM_MQTT_USERNAME": ("mqtt", "username"),
    "LEARNROOM_MQTT_PASSWORD": ("mqtt", "password"),
    "LEARNROOM_INFLUX_USERNAME": ("influx", "username"),
    "LEARNROOM_INFLUX_PASSWORD": ("influx", "password"),
    "LEARNROOM_INFLUX_TOKEN": ("influx", "token"),
}

DEFAULT_DATABASE = "learnroom"


class CentralMqttSection(MqttSection):
    #: MQTT 5 by default on the central side: its Receive Maximum lets the ingest hold many
    #: unacknowledged messages while a batch is written (3.1.1 gets the broker's
    #: ``max_inflight_messages``, 20 by default in Mosquitto).
    protocol: Literal["3.1.1", "5"] = "5"


class InfluxSection(_Config):
    """Where points go. ``database`` means InfluxDB 1.x (``/write``); ``org`` and ``bucket``
    mean 2.x/3.x through influxdb-client with a token."""

    url: str = "http://localhost:8086"
    database: str | None = None
    retention_policy: str | None = None
    username: str | None = None
    password: str | None = None
    org: str | None = None
    bucket: str | None = None
    token: str | None = None
    timeout_s: float = Field(default=10.0, gt=0)
    #: Attempts per batch before the ingest stops acknowledging and waits for the database.
    attempts: int = Field(default=5, ge=1)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected http://host:port or https://host:port")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_api(self) -> InfluxSection:
        v2 = self.org is not None or self.bucket is not None
        if v2 and self.database is not None:
            raise ValueError("set database (InfluxDB 1.x) or org and bucket (2.x/3.x), not both")
        if v2 and (not self.org or not self.bucket):
            raise ValueError("InfluxDB 2.x needs both org and bucket")
        if v2 and not self.token:
            raise ValueError("InfluxDB 2.x needs a token (influx.token or LEARNROOM_INFLUX_TOKEN)")
        return self

    @property
    def version(self) -> Literal[1, 2]:
        return 2 if self.bucket else 1

    @property
    def db(self) -> str:
        return self.database or DEFAULT_DATABASE


class IngestSection(_Config):
    #: Persistent session: the broker keeps what arrives while the ingest is down.
    client_id: str = "learnroom-ingest"
    #: Workers sharing this group split the load (``$share/<group>/...``); "" subscribes plainly.
    shared_group: str = "learnroom-ingest"
    #: Kept by the broker this long while the ingest is away (MQTT 5 session expiry).
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    batch_lines: int = Field(default=5000, ge=1, le=100_000)
    batch_interval_s: float = Field(default=1.0, gt=0, le=60)
    #: Messages received but not yet written and acknowledged (MQTT 5 Receive Maximum): the
    #: bound on memory while the database is down.
    max_pending: int = Field(default=20_000, ge=10, le=65_535)
    #: Prometheus /metrics; port 0 turns it off.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9310, ge=0, le=65535)
    #: A sample of what was refused and why (JSON lines, rotated); "" turns it off.
    rejected_file: Path | None = Path("rejected.jsonl")
    rejected_samples_per_minute: int = Field(default=20, ge=0)

    @field_validator("shared_group")
    @classmethod
    def _group(cls, value: str) -> str:
        if any(c in value for c in "/+#"):
            raise ValueError("a share group name has no '/', '+' or '#'")
        return value


class AcceptSection(_Config):
    """How far a reading's ``ts`` may lie from the central clock, for every consumer (ingest,
    alerts, display); a reading outside is refused with a counted reason (``ts_too_old``,
    ``ts_future``). A simulation faster than real time (``agent --simulate --speed``) sends
    readings ahead of the clock: set both to 0 there to accept any sane date."""

    #: The longest outage an outbox can hold: 200 000 messages are about two weeks of a room.
    #: 0: no bound (either field).
    max_age_s: float = Field(default=31 * 86400.0, ge=0, allow_inf_nan=False)
    #: Clock skew a gateway may have (NTP-synced Pis are within seconds).
    max_ahead_s: float = Field(default=300.0, ge=0, allow_inf_nan=False)

    def window(self) -> Window | None:
        if not self.max_age_s and not self.max_ahead_s:
            return None
        return Window(
            max_age=timedelta(seconds=self.max_age_s or 1e9),
            ahead=timedelta(seconds=self.max_ahead_s or 1e9),
        )


class Override(_Config):
    """Settings for one site, or one room of it, over the defaults."""

    site: Slug
    room: Slug | None = None
    report_interval_s: float | None = Field(default=None, gt=0)
    #: Per rule, only the settings that differ, e.g. ``co2_ventilate = {threshold = 1200}``.
    rules: dict[str, dict[str, Any]] = Field(default_factory=dict)


class Maintenance(_Config):
    """A window in which a site's or room's alerts are silenced (resolved, none fire)."""

    site: Slug
    room: Slug | None = None
    start: datetime
    end: datetime
    reason: str = ""

    @model_validator(mode="after")
    def _window(self) -> Maintenance:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a UTC offset, e.g. 2026-11-23T08:00:00+01:00")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def covers(self, site: str, room: str, now: datetime) -> bool:
        return self.site == site and self.room in (None, room) and self.start <= now < self.end


class _RuleLookup:
    """Each room's rules as a lookup. The alert service asks for every room at every
    evaluation, and merging overrides validates a whole ``Rules`` model, so each distinct
    merge is made once: rooms that the same overrides cover share it (3 000 rooms, every 5 s).
    """

    def __init__(self, section: AlertsSection) -> None:
        self.section = section
        self.index: dict[tuple[str, str | None], list[Override]] = {}
        for o in section.override:
            self.index.setdefault((o.site, o.room), []).append(o)
        self.merged: dict[tuple[str, str | None], Rules] = {}

    def rules_for(self, site: str, room: str) -> Rules:
        index = self.index
        if (site, room) in index:
            key: tuple[str, str | None] = (site, room)
        elif (site, None) in index:
            key = (site, None)
        else:
            return self.section.rules
        rules = self.merged.get(key)
        if rules is None:
            rules = self.merged[key] = self.section._merge(*key)
        return rules

    def interval_for(self, site: str, room: str) -> float:
        value = self.section.report_interval_s
        for key in ((site, None), (site, room)):  # the room's setting wins over the site's
            for o in self.index.get(key, ()):
                if o.report_interval_s:
                    value = o.report_interval_s
        return value


class AlertsSection(_Config):
    #: Prometheus Alertmanager (v2 API); none: alerts go to MQTT and InfluxDB only.
    alertmanager_url: str | None = "http://localhost:9093"
    #: One post to Alertmanager may take this long; then it is retried with backoff.
    alertmanager_timeout_s: float = Field(default=10.0, gt=0, le=300, allow_inf_nan=False)
    #: Each alert links to the room's dashboard here.
    grafana_url: str = "http://localhost:3000"
    room_dashboard_uid: str = "learnroom-room"
    client_id: str = "learnroom-alerts"
    evaluate_interval_s: float = Field(default=5.0, gt=0)
    #: Firing alerts are sent again this often, well within Alertmanager's resolve_timeout.
    resend_interval_s: float = Field(default=60.0, gt=0)
    #: The gateways' report interval (agent.report_interval_s); silence is counted in these.
    report_interval_s: float = Field(default=30.0, gt=0)
    #: After a start, retained alert topics are read this long before the first evaluation,
    #: so that alerts firing before a restart are resumed, not announced again.
    startup_grace_s: float = Field(default=3.0, ge=0)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9311, ge=0, le=65535)
    rules: Rules = Rules()
    override: list[Override] = Field(default_factory=list)
    maintenance: list[Maintenance] = Field(default_factory=list)
    _lookup: _RuleLookup = PrivateAttr()

    @field_validator("rules", mode="before")
    @classmethod
    def _partial_rules(cls, value: object) -> object:
        """A rule's table in the file sets only what differs from its defaults."""
        if not isinstance(value, dict):
            return value
        merged = Rules().model_dump()
        for rule, settings in value.items():
            if rule in merged and isinstance(settings, dict):
                merged[rule] = merged[rule] | settings
            else:
                merged[rule] = settings  # unknown rule or not a table: pydantic says so
        return merged

    @field_validator("alertmanager_url", "grafana_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("expected http://host:port or https://host:port")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _overrides(self) -> AlertsSection:
        for i, override in enumerate(self.override):
            unknown = sorted(set(override.rules) - set(RULE_NAMES))
            if unknown:
                raise ValueError(
                    f"override[{i}].rules.{unknown[0]}: unknown rule; "
                    f"rules are {', '.join(RULE_NAMES)}"
                )
            try:
                self._merge(override.site, override.room)
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"])
                msg = str(err["msg"]).removeprefix("Value error, ")
                got = f" (got {err['input']!r:.40})" if not isinstance(err["input"], dict) else ""
                raise ValueError(f"override[{i}].rules.{where}: {msg}{got}") from None
        return self

    def model_post_init(self, context: Any, /) -> None:  # noqa: ANN401 - pydantic's signature
        self._lookup = _RuleLookup(self)

    def _merge(self, site: str, room: str | None) -> Rules:
        merged = self.rules.model_dump()
        # the site's settings first, then the room's
        for o in sorted(self.override, key=lambda o: o.room is not None):
            if o.site == site and o.room in (None, room):
                for rule, settings in o.rules.items():
                    merged[rule] = merged[rule] | settings
        return Rules.model_validate(merged)

    def _rule_lookup(self) -> _RuleLookup:
        lookup = self._lookup
        if lookup.section is not self:  # a model_copy(update=...) keeps the old one's
            lookup = self._lookup = _RuleLookup(self)
        return lookup

    def rules_for(self, site: str, room: str) -> Rules:
        return self._rule_lookup().rules_for(site, room)

    def interval_for(self, site: str, room: str) -> float:
        return self._rule_lookup().interval_for(site, room)

    def in_maintenance(self, site: str, room: str, now: datetime) -> bool:
        return any(m.covers(site, room, now) for m in self.maintenance)


class DisplayRoom(_Config):
    site: Slug
    room: Slug
    #: Shown on the display; the room slug when absent.
    name: str | None = None
    name_en: str | None = None
    #: The room's booking calendar: an ICS URL (http, https, webcal) or a file (relative to
    #: the config file).
    calendar: str | None = None
    #: Opening hours, e.g. ``{mon = ["08:00-20:00"], sat = ["10:00-14:00"]}`` (a day left
    #: out is closed); the display's ``hours`` when absent.
    hours: OpeningHours | None = None
    #: ``"open"``: a learning space anyone may walk into, shown by its free seats;
    #: ``"bookable"``: a room groups book, shown booked or free with today's free times.
    #: Absent: bookable when the room has a calendar, else open.
    kind: Literal["open", "bookable"] | None = None

    @field_validator("kind")
    @classmethod
    def _bookable_has_calendar(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value == "bookable" and not info.data.get("calendar"):
            raise ValueError(
                'a bookable room needs its booking calendar: set calendar = "<ICS file or '
                'URL>", or kind = "open" for a space without bookings'
            )
        return value

    @property
    def room_kind(self) -> Literal["open", "bookable"]:
        """The kind as configured, else bookable with a calendar and open without."""
        if self.kind is not None:
            return self.kind
        return "bookable" if self.calendar else "open"


class DisplaySection(_Config):
    host: str = "127.0.0.1"
    port: int = Field(default=const.DEFAULT_DISPLAY_PORT, ge=1, le=65535)
    timezone: TimeZoneName = "Europe/Berlin"
    #: Site slug to the name residents know it by.
    sites: dict[str, str] = Field(default_factory=dict)
    rooms: list[DisplayRoom] = Field(default_factory=list)
    #: Rooms seen on MQTT but not listed above are shown too, under their slug.
    show_unlisted: bool = True
    #: Opening hours of every room without its own (``None``: always open).
    hours: OpeningHours | None = None
    #: People counts below this show as "a few" (DESIGN.md "Privacy").
    min_count: int = Field(default=3, ge=1)
    #: A booking with nobody in the room this long after its start shows "probably free".
    no_show_after_s: float = Field(default=900.0, gt=0)
    publish_no_shows: bool = True
    report_interval_s: float = Field(default=30.0, gt=0)
    calendar_refresh_s: float = Field(default=300.0, gt=0)
    #: One calendar fetch (connect, headers, body) ends after this, so a slow host holds up
    #: nothing but its own room.
    calendar_timeout_s: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    #: Without a good load for this long a room says its bookings cannot be read (a new
    #: booking may be missing); longer than ``calendar_refresh_s``.
    calendar_stale_after_s: float = Field(default=3600.0, gt=0, allow_inf_nan=False)
    #: Occurrences one calendar may expand to in its window (7 days back, 42 ahead); more
    #: (an endless ``FREQ=SECONDLY``) is refused, not held in memory.
    calendar_max_occurrences: int = Field(default=20_000, ge=1)
    kiosk_page_s: float = Field(default=15.0, gt=0)
    kiosk_rooms_per_page: int = Field(default=6, ge=1)
    #: Room changes one open page may fall behind by; beyond, its stream is closed and the
    #: page reconnects for the whole state.
    stream_queue: int = Field(default=512, ge=1)
    client_id: str = "learnroom-display"
    #: Prometheus /metrics (rooms, open pages, updates sent); port 0 turns it off.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9312, ge=0, le=65535)
    #: A loop without progress this long is stuck: ``/healthz`` says 503 and the process exits.
    stuck_after_s: float = Field(default=60.0, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _stale_after_refresh(self) -> DisplaySection:
        if self.calendar_stale_after_s <= self.calendar_refresh_s:
            raise ValueError(
                "calendar_stale_after_s must be longer than calendar_refresh_s, or every room "
                "with a calendar would say its bookings cannot be read between two loads"
            )
        return self


class CentralConfig(_Config):
    #: Where the services keep their files (``ingest.rejected_file`` when relative); relative
    #: to the config file. Default: ``--state-dir``, else systemd's ``$STATE_DIRECTORY``, else
    #: ``~/.local/state/learnroom`` (``gateway.config.state_home``).
    state_dir: Path | None = None
    mqtt: CentralMqttSection = CentralMqttSection()
    accept: AcceptSection = AcceptSection()
    influx: InfluxSection | None = None
    ingest: IngestSection = IngestSection()
    alerts: AlertsSection = AlertsSection()
    display: DisplaySection = DisplaySection()


def parse_central(
    raw: dict[str, Any], source: str, environ: Mapping[str, str] | None = None
) -> CentralConfig:
    return parse_config(CentralConfig, raw, source, environ, ENV_OVERRIDES)


def load_central_config(
    path: Path | None,
    environ: Mapping[str, str] | None = None,
    *,
    state_dir: Path | None = None,
) -> CentralConfig:
    """The file's settings (defaults without a file), with relative state files placed in
    the state directory: ``state_dir`` (``--state-dir``) over the file's ``state_dir`` over
    ``state_home()``. Relative paths in the file itself are the file's."""
    if path is None:
        config = parse_central({}, "(defaults)", environ)
    else:
        config = parse_central(load_toml(path), str(path), environ)
    base = state_dir or config.state_dir
    if base is None:
        base = state_home(environ)
    elif path is not None and not base.is_absolute():
        base = path.parent / base
    config = config.model_copy(update={"state_dir": base})
    rejected = config.ingest.rejected_file
    if rejected is not None and str(rejected) and not rejected.is_absolute():
        ingest = config.ingest.model_copy(update={"rejected_file": base / rejected})
        config = config.model_copy(update={"ingest": ingest})
    return config


_INFLUX_EXPECTED = (
    "expected http(s)://host:port?db=DATABASE[&rp=RETENTION_POLICY] for InfluxDB 1.x "
    "or http(s)://host:port?org=ORG&bucket=BUCKET for InfluxDB 2.x/3.x"
)


def parse_influx_url(
    url: str, base: InfluxSection | None, environ: Mapping[str, str]
) -> InfluxSection:
    """``--influx``: the query names are the databases' own write APIs', so a URL that works
    with ``curl`` works here; one that could mean either, or neither, is refused now rather
    than guessed at and found wrong at the first write. Credentials stay out of the URL
    (process lists show it): ``LEARNROOM_INFLUX_TOKEN``, ``_USERNAME``, ``_PASSWORD``."""

    def refuse(why: str) -> ConfigError:
        return ConfigError([f"--influx {url!r}: {why}"])

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise refuse(_INFLUX_EXPECTED)
    if parts.username or parts.password:
        raise refuse(
            "credentials do not go into the URL; give a token (LEARNROOM_INFLUX_TOKEN) "
            "or LEARNROOM_INFLUX_USERNAME and LEARNROOM_INFLUX_PASSWORD"
        )
    params: dict[str, str] = {}
    for key, values in parse_qs(parts.query, keep_blank_values=True).items():
        if key not in ("db", "rp", "org", "bucket") or len(values) != 1 or not values[0]:
            raise refuse(f"bad parameter {key!r}; {_INFLUX_EXPECTED}")
        params[key] = values[0]
    if set(params) not in ({"db"}, {"db", "rp"}, {"org", "bucket"}):
        raise refuse(_INFLUX_EXPECTED)
    if "org" in params and not (environ.get("LEARNROOM_INFLUX_TOKEN") or (base and base.token)):
        raise refuse("InfluxDB 2.x/3.x needs a token (LEARNROOM_INFLUX_TOKEN)")
    update: dict[str, Any] = {
        "url": f"{parts.scheme}://{parts.netloc}{parts.path}",
        "database": params.get("db"),
        "retention_policy": params.get("rp"),
        "org": params.get("org"),
        "bucket": params.get("bucket"),
    }
    merged = (base.model_dump() if base else {}) | update
    config = parse_config(CentralConfig, {"influx": merged}, "--influx", environ, ENV_OVERRIDES)
    assert config.influx is not None  # noqa: S101 - it was just given
    return config.influx


def subscription(config: CentralConfig) -> str:
    """The topic filter of the ingest, shared when a group is set (DESIGN.md "Scale")."""
    topic = f"{config.mqtt.prefix}/#"
    group = config.ingest.shared_group
    return f"$share/{group}/{topic}" if group else topic


__all__ = [
    "CentralConfig",
    "InfluxSection",
    "IngestSection",
    "load_central_config",
    "parse_influx_url",
]
