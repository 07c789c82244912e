"""Who is provisioned (``state.json``), and the names derived from a (site, room) pair.

A slug may contain dashes, so ``gw-<site>-<room>`` (the names of the first release) is
ambiguous: site ``stadt-mitte`` room ``raum-1`` and site ``stadt`` room ``mitte-raum-1`` got
one user and one folder. New gateways are ``gw.<site>.<room>`` in ``rooms/<site>/<room>/``:
a slug has no ``.`` or ``/``, so the pair is read back unambiguously, and no new name can
equal an old one (old ones have no ``.``; old folders sit one level under ``rooms/``).

Gateways provisioned before keep their user and folder (the Pi holds that user in its
config); each state entry records its own site, room and folder, and gateways are looked up
by the pair, never by a name computed from it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway import const
from gateway.central.tools.provision.files import write_atomic
from gateway.errors import ConfigError

#: ``const.SLUG_PATTERN`` without anchors: names are matched whole with ``fullmatch`` (``$``
#: would accept a trailing newline).
SLUG_RE = re.compile(const.SLUG_PATTERN.removeprefix("^").removesuffix("$"))


def check_slug(flag: str, value: str) -> str:
    if not SLUG_RE.fullmatch(value):
        raise ConfigError(
            [
                f"{flag} {value!r}: use lower-case letters, digits and dashes, starting with a "
                "letter or digit, at most 63 (a slug)"
            ]
        )
    return value


def gateway_user(site: str, room: str) -> str:
    """The broker user (and certificate CN) of a new gateway: ``gw.<site>.<room>``."""
    return f"gw.{check_slug('--site', site)}.{check_slug('--room', room)}"


def room_folder(site: str, room: str) -> str:
    """A new gateway's folder, relative to the provision folder."""
    return f"rooms/{site}/{room}"


def legacy_folder(site: str, room: str) -> str:
    """Where the first release put a gateway's files."""
    return f"rooms/{site}-{room}"


@dataclass
class State:
    path: Path
    gateways: dict[str, dict[str, Any]] = field(default_factory=dict)
    central: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: revoked client certificates: ``{"serial": int, "user": str, "when": iso}``
    revoked: list[dict[str, Any]] = field(default_factory=list)
    prefix: str = const.TOPIC_PREFIX

    @classmethod
    def load(cls, path: Path) -> State:
        if not path.exists():
            return cls(path)
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError([f"{path}: cannot read the provisioning state: {exc}"]) from exc
        gateways: dict[str, dict[str, Any]] = raw.get("gateways", {})
        for entry in gateways.values():
            # an entry of the first release: its folder was named after the pair with a dash
            entry.setdefault("dir", legacy_folder(entry["site"], entry["room"]))
        return cls(
            path,
            gateways,
            raw.get("central", {}),
            raw.get("revoked", []),
            raw.get("prefix", const.TOPIC_PREFIX),
        )

    def text(self) -> str:
        data = {
            "prefix": self.prefix,
            "gateways": self.gateways,
            "central": self.central,
            "revoked": self.revoked,
        }
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def save(self) -> None:
        def check(raw: bytes) -> None:
            json.loads(raw)

        write_atomic(self.path, self.text().encode(), 0o600, check)

    def find(self, site: str, room: str) -> str | None:
        """The user of the gateway of (site, room), whatever its naming; None if there is none."""
        for user, entry in self.gateways.items():
            if (entry["site"], entry["room"]) == (site, room):
                return user
        return None

    def revoked_serials(self) -> list[tuple[int, dt.datetime]]:
        return [(int(r["serial"]), dt.datetime.fromisoformat(r["when"])) for r in self.revoked]
