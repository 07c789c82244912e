"""Config shared by every part: the base of every config model, the MQTT section, loading.

The room's config is ``gateway.agent.config``, the central side's ``gateway.central.config``;
both are built from these pieces, so a file is read, overlaid with ``LEARNROOM_*`` secrets and
reported the same way everywhere (errors name file and field).
"""

from __future__ import annotations

import os
import ssl
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway import const
from gateway.errors import ConfigError, TopicError
from gateway.topics import check_prefix

__all__ = [
    "ConfigError",
    "MqttSection",
    "TimeZoneName",
    "load_toml",
    "parse_config",
    "parse_mqtt_url",
    "state_home",
    "tls_context",
]

T = TypeVar("T", bound=BaseModel)


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


class _Config(BaseModel):
    # inf and nan pass a "gt=0" check and then hang or crash a service: never a setting
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


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
    #: A connection up this long is healthy: only then does the reconnect backoff start
    #: again from ``reconnect_min_s`` (a broker that accepts and closes at once gets no storm).
    healthy_after_s: float = Field(default=30.0, gt=0)
    #: Wait (jittered down to half) between reconnects once another gateway with the same
    #: site/room keeps taking our session: a cloned SD card must not make both rooms flap.
    twin_backoff_s: float = Field(default=300.0, gt=0)

    @field_validator("prefix")
    @classmethod
    def _plain_prefix(cls, value: str) -> str:
        """A wildcard or empty level would subscribe to, or publish under, the wrong topics."""
        try:
            return check_prefix(value)
        except TopicError as exc:
            raise ValueError(str(exc)) from None

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


def state_home(environ: Mapping[str, str] | None = None) -> Path:
    """Where a service keeps its files when no config says: systemd's ``StateDirectory=``
    (``$STATE_DIRECTORY``), else ``$XDG_STATE_HOME/learnroom`` or ``~/.local/state/learnroom``;
    never the folder a command happens to be run from."""
    env = os.environ if environ is None else environ
    if env.get("STATE_DIRECTORY"):
        # systemd may pass several, colon-separated; the first is this service's own
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "learnroom"


def tls_context(settings: MqttSection) -> ssl.SSLContext | None:
    """The TLS context of an ``mqtts://`` connection, for the agent and the central services."""
    if not settings.tls:
        return None
    ctx = ssl.create_default_context(
        cafile=str(settings.ca_file) if settings.ca_file is not None else None
    )
    if settings.cert_file is not None and settings.key_file is not None:
        ctx.load_cert_chain(str(settings.cert_file), str(settings.key_file))
    return ctx


def apply_env(
    raw: dict[str, Any],
    environ: Mapping[str, str],
    overrides: Mapping[str, tuple[str, str]],
    optional: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Overlay ``LEARNROOM_*`` secrets on the raw config."""
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for var, (section, key) in overrides.items():
        if section in optional and section not in merged:
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
    overrides: Mapping[str, tuple[str, str]] | None = None,
    optional: frozenset[str] = frozenset(),
) -> T:
    """Validate a raw mapping; every problem goes into one ``ConfigError``."""
    data = apply_env(raw, os.environ if environ is None else environ, overrides or {}, optional)
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
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [f"{path}: not UTF-8 text (byte {exc.start}): save the file as UTF-8"]
        ) from exc
    except RecursionError as exc:
        raise ConfigError([f"{path}: nested too deeply to be a config file"]) from exc
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc


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
