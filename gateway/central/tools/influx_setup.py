"""``learnroom influx-setup`` for InfluxDB 1.x: retention, rollup and continuous queries.

Raw points are kept ``raw_days`` in the default retention policy ``raw``; 5-minute aggregates
are kept ``rollup_days`` in ``rollup_<interval>`` under the same measurement, field and tag
names, so a dashboard switches between them by retention policy alone. The field lists come
from ``mapping.TABLE`` (plus the locker fan-out), so the rollup cannot drift from the schema.

Beside them, a few rollup fields that need a condition (``DERIVED``): minutes per window
in which the room was occupied with CO2 in each UBA band, minutes occupied, peak people,
minutes with degraded Wi-Fi. InfluxQL has no conditional aggregate and cannot join two
measurements, so each is a continuous query of its own that counts 1-minute buckets of raw
points matching its condition, writing one more field into the same rollup point (InfluxDB
merges fields of one series and time). Minutes sum: "minutes occupied in each band per room
and day" is one ``sum()`` over the rollup, whatever each room's report interval.

Every step looks before it acts and says "already" when nothing needed doing, so running
setup again is safe. Only the stdlib talks HTTP: the central host needs nothing more.
"""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from gateway import const
from gateway.central.mapping import FANOUT, TABLE
from gateway.errors import ConfigError, LearnroomError

RAW_RP = "raw"

#: Fields summed, not averaged: a count per window is what a "checkouts per hour" panel wants.
SUMMED = {("locker_event", "count")}

_FINE, _CRIT = const.CO2_FINE_BELOW_PPM, const.CO2_CRITICAL_ABOVE_PPM
#: The UBA bands as conditions on a minute's mean CO2 ("c"): rollup field -> condition.
CO2_BAND_FIELDS: dict[str, str] = {
    "occupied_min_fine": f'"c" < {_FINE:.0f}',
    "occupied_min_ventilate": f'"c" >= {_FINE:.0f} AND "c" <= {_CRIT:.0f}',
    "occupied_min_critical": f'"c" > {_CRIT:.0f}',
}


@dataclass(frozen=True)
class Derived:
    """A rollup field with a condition: ``inner`` aggregates the raw points of each minute
    that match ``inner_where`` as "c"; the window counts the minutes whose "c" matches
    ``outer_where``. Without ``inner`` the field is ``outer`` of the raw points."""

    measurement: str
    field: str
    outer: str = 'count("c")'
    inner: str | None = None
    inner_where: str = ""
    outer_where: str = ""


#: Rollup fields beyond the schema's own (README "InfluxDB schema"); all integers.
DERIVED: tuple[Derived, ...] = (
    *(
        Derived(
            "environment",
            name,
            inner='mean("co2_ppm")',
            inner_where='"occupied" = true',
            outer_where=cond,
        )
        for name, cond in CO2_BAND_FIELDS.items()
    ),
    Derived(
        "occupancy", "occupied_min", inner='count("occupied")', inner_where='"occupied" = true'
    ),
    Derived("occupancy", "people_max", outer='max("people")'),
    Derived("wifi", "degraded_min", inner='count("ok")', inner_where='"ok" = false'),
)

_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s|ms|us|µs|ns)")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


class InfluxSetupError(LearnroomError, RuntimeError):
    """InfluxDB could not be reached or refused a setup statement; the message says which."""


@dataclass(frozen=True)
class _Measurement:
    name: str
    numeric: tuple[str, ...]
    last: tuple[str, ...]  # booleans and strings: InfluxQL's mean() refuses them


def _measurements() -> list[_Measurement]:
    """One entry per measurement, merging kinds that share one (health + status = gateway)."""
    numeric: dict[str, list[str]] = {}
    last: dict[str, list[str]] = {}
    for spec in (*TABLE.values(), *FANOUT):
        nums = numeric.setdefault(spec.measurement, [])
        lasts = last.setdefault(spec.measurement, [])
        nums += [f for f in (*spec.ints, *spec.floats) if f not in nums]
        lasts += [f for f in (*spec.bools, *spec.strings) if f not in lasts]
    return [_Measurement(m, tuple(numeric[m]), tuple(last[m])) for m in numeric]


def _seconds(duration: str, what: str) -> int:
    """Seconds of an InfluxQL duration literal such as ``5m`` (one unit, whole numbers)."""
    match = re.fullmatch(r"(\d+)([wdhms])", duration.strip())
    if match is None or int(match[1]) == 0:
        raise ConfigError([f"{what}: {duration!r} is not a duration like 5m, 1h or 2d"])
    return int(match[1]) * _UNITS[match[2]]


def _literal(seconds: int) -> str:
    """The duration as InfluxDB writes it back (``300s`` -> ``5m``), so texts compare equal."""
    for unit, size in _UNITS.items():
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise AssertionError("unreachable: 1s divides every whole number of seconds")


def _go_seconds(text: str) -> float:
    """Seconds of a Go duration as SHOW RETENTION POLICIES prints it (``2160h0m0s``)."""
    return sum(float(n) * _GO_UNITS[u] for n, u in _GO_DURATION.findall(text))


def _ident(name: str) -> str:
    """A double-quoted InfluxQL identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rollup_rp(rollup_interval: str = "5m") -> str:
    """Name of the rollup retention policy for an interval, e.g. ``rollup_5m``."""
    return f"rollup_{_literal(_seconds(rollup_interval, 'rollup interval'))}"


def _select(m: _Measurement, database: str, rp: str, interval: str, where: str = "") -> str:
    parts = [
        f"{'sum' if (m.name, f) in SUMMED else 'mean'}({_ident(f)}) AS {_ident(f)}"
        for f in m.numeric
    ]
    parts += [f"last({_ident(f)}) AS {_ident(f)}" for f in m.last]
    into = f"{_ident(database)}.{_ident(rp)}.{_ident(m.name)}"
    source = f"{_ident(database)}.{_ident(RAW_RP)}.{_ident(m.name)}"
    # every name is quoted by _ident, every duration checked by _seconds
    return (
        f"SELECT {', '.join(parts)} INTO {into} FROM {source}{where} GROUP BY time({interval}), *"  # noqa: S608
    )


def _derived_select(d: Derived, database: str, rp: str, interval: str, when: str = "") -> str:
    """``when``: a condition on time (the backfill's chunk), ANDed to the window's WHERE."""
    into = f"{_ident(database)}.{_ident(rp)}.{_ident(d.measurement)}"
    source = f"{_ident(database)}.{_ident(RAW_RP)}.{_ident(d.measurement)}"
    if d.inner is not None:
        where = f" WHERE {d.inner_where}" if d.inner_where else ""
        source = f'(SELECT {d.inner} AS "c" FROM {source}{where} GROUP BY time(1m), *)'  # noqa: S608
    conds = " AND ".join(c for c in (d.outer_where, when) if c)
    where = f" WHERE {conds}" if conds else ""
    # every name is quoted by _ident or a constant of this module
    return (
        f"SELECT {d.outer} AS {_ident(d.field)} INTO {into} FROM {source}{where} "  # noqa: S608
        f"GROUP BY time({interval}), *"
    )


def _cq_name(rp: str, measurement: str) -> str:
    return f"{rp}_{measurement}"


def rollup_queries(
    database: str = "learnroom",
    *,
    rollup_interval: str = "5m",
    resample_for: str | None = "1h",
) -> dict[str, str]:
    """CQ name -> ``CREATE CONTINUOUS QUERY`` text, one per measurement.

    ``GROUP BY time, *`` keeps every tag a tag. ``RESAMPLE FOR`` recomputes recent windows,
    so points a gateway's outbox delivers late still reach the rollup (``None``: only the
    window that just closed).
    """
    step = _seconds(rollup_interval, "rollup interval")
    interval = _literal(step)
    rp = rollup_rp(rollup_interval)
    resample = ""
    if resample_for is not None:
        span = _seconds(resample_for, "resample window")
        if span < step:
            raise ConfigError([f"resample window {resample_for} is shorter than {interval}"])
        resample = f" RESAMPLE EVERY {interval} FOR {_literal(span)}"
    out: dict[str, str] = {}
    for m in _measurements():
        name = _cq_name(rp, m.name)
        out[name] = (
            f"CREATE CONTINUOUS QUERY {_ident(name)} ON {_ident(database)}{resample} "
            f"BEGIN {_select(m, database, rp, interval)} END"
        )
    for d in DERIVED:
        name = _cq_name(rp, f"{d.measurement}_{d.field}")
        out[name] = (
            f"CREATE CONTINUOUS QUERY {_ident(name)} ON {_ident(database)}{resample} "
            f"BEGIN {_derived_select(d, database, rp, interval)} END"
        )
    return out


def _same_query(a: str, b: str) -> bool:
    """Equal up to identifier quoting and spacing (InfluxDB stores a normalized text)."""
    return " ".join(a.replace('"', "").split()) == " ".join(b.replace('"', "").split())


class _Client:
    """Just enough of the v1 ``/query`` API: GET to read, POST to change, errors explained."""

    def __init__(
        self, url: str, username: str | None, password: str | None, timeout_s: float
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.headers: dict[str, str] = {}
        if username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"  # not in the URL, nor in logs

    def read(self, q: str, db: str | None = None) -> list[dict[str, Any]]:
        """Rows of a SHOW or SELECT (GET: InfluxDB refuses changes made with it)."""
        return result_rows(self._call(q, db, write=False))

    def write(self, q: str, db: str | None = None) -> list[dict[str, Any]]:
        """Rows of a statement that changes something (POST, as InfluxDB requires)."""
        return result_rows(self._call(q, db, write=True))

    def _call(self, q: str, db: str | None, *, write: bool) -> dict[str, Any]:
        params = {"q": q} | ({"db": db} if db else {})
        body = urllib.parse.urlencode(params).encode()
        if write:
            request = urllib.request.Request(  # noqa: S310 - the configured http(s) URL
                f"{self.url}/query", data=body, method="POST", headers=self.headers
            )
        else:
            request = urllib.request.Request(  # noqa: S310 - the configured http(s) URL
                f"{self.url}/query?{body.decode()}", headers=self.headers
            )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:  # noqa: S310
                payload = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")[:500]
            raise InfluxSetupError(self._explain(q, exc.code, _message(text))) from exc
        except (OSError, ValueError) as exc:
            raise InfluxSetupError(
                f"cannot reach InfluxDB at {self.url} ({exc}); check the URL and that "
                "influxd is running and listening there"
            ) from exc
        if "error" in payload:
            raise InfluxSetupError(f"InfluxDB refused {q!r}: {payload['error']}")
        result: dict[str, Any] = (payload.get("results") or [{}])[0]
        if "error" in result:
            raise InfluxSetupError(
                f"InfluxDB refused {q!r}: {result['error']}"
                + ("; setup needs an admin user" if "authoriz" in result["error"] else "")
            )
        return result

    def _explain(self, q: str, code: int, message: str) -> str:
        hint = {
            401: "check the username and password (InfluxDB has auth enabled)",
            403: "the user is not allowed to do this: setup needs an admin user",
            404: f"is {self.url} an InfluxDB 1.x URL? (2.x: see deploy/central/influxdb2-setup.md)",
            400: "this InfluxDB does not understand the statement: is it 1.x?",
        }.get(code, "check the URL and InfluxDB's log")
        return f"InfluxDB answered {code} to {q!r}: {message}; {hint}"


def result_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One InfluxQL statement's series as dicts, tags merged in; ``_series`` is the series
    name (the measurement, or the database for CQs)."""
    rows: list[dict[str, Any]] = []
    for series in result.get("series", []):
        for values in series.get("values") or []:
            row = dict(zip(series["columns"], values, strict=True))
            row.update(series.get("tags") or {})
            row["_series"] = series.get("name")
            rows.append(row)
    return rows


def _message(text: str) -> str:
    try:
        payload = json.loads(text)
    except ValueError:
        return text.strip()
    return str(payload.get("error", text)) if isinstance(payload, dict) else text.strip()


def _ensure_rp(client: _Client, database: str, name: str, days: int, *, default: bool) -> list[str]:
    rows = {r["name"]: r for r in client.read(f"SHOW RETENTION POLICIES ON {_ident(database)}")}
    want = days * 86400
    clause = f"DURATION {days}d REPLICATION 1" + (" DEFAULT" if default else "")
    target = f"{_ident(name)} ON {_ident(database)}"
    label = f"retention policy {name} ({days}d{', default' if default else ''})"
    row = rows.get(name)
    if row is None:
        client.write(f"CREATE RETENTION POLICY {target} {clause}")
        was = [n for n, r in rows.items() if r.get("default")]
        note = f"; points written before (if any) stay in {was[0]}" if default and was else ""
        return [f"{label}: created{note}"]
    changes = []
    have = _go_seconds(str(row["duration"]))
    if round(have) != want:
        changes.append(f"duration {_literal(round(have)) if have else 'infinite'} -> {days}d")
    if default and not row.get("default"):
        changes.append("made default")
    if not changes:
        return [f"{label}: already"]
    client.write(f"ALTER RETENTION POLICY {target} {clause}")
    return [f"{label}: altered, {', '.join(changes)}"]


def _ensure_cqs(client: _Client, database: str, wanted: dict[str, str]) -> list[str]:
    existing = {
        r["name"]: str(r["query"])
        for r in client.read("SHOW CONTINUOUS QUERIES")
        if r["_series"] == database  # the listing covers every database
    }
    lines = []
    for name, text in wanted.items():
        have = existing.get(name)
        if have is not None and _same_query(have, text):
            lines.append(f"continuous query {name}: already")
            continue
        if have is not None:
            # a CQ cannot be altered: drop it and create it anew
            client.write(f"DROP CONTINUOUS QUERY {_ident(name)} ON {_ident(database)}")
        client.write(text, database)
        lines.append(f"continuous query {name}: {'recreated' if have else 'created'}")
    lines += [
        f"continuous query {name}: not part of this setup, left alone"
        for name in sorted(set(existing) - set(wanted))
    ]
    return lines


def _backfill(client: _Client, database: str, raw_days: int, rollup_interval: str) -> list[str]:
    """Run each rollup SELECT ... INTO over the raw data, a day or so at a time.

    Chunks keep one statement from holding a city's 90 days in memory or outliving the HTTP
    timeout; their edges fall on window edges, so no window is split and half-overwritten.
    """
    step = _seconds(rollup_interval, "rollup interval")
    interval = _literal(step)
    rp = rollup_rp(rollup_interval)
    chunk = step * -(-86400 // step)  # whole windows, at least a day
    now = int(time.time())
    end = (now // step + 1) * step
    start = (now - (raw_days + 2) * 86400) // chunk * chunk  # retention drops whole shards late
    lines = []
    for m in _measurements():
        written = 0
        for lo in range(start, end, chunk):
            hi = min(lo + chunk, end)
            where = f" WHERE time >= {lo}s AND time < {hi}s"
            for row in client.write(_select(m, database, rp, interval, where)):
                written += int(row.get("written") or 0)
        lines.append(f"backfill {m.name}: {written} points written into {rp}")
    for d in DERIVED:
        written = 0
        for lo in range(start, end, chunk):
            when = f"time >= {lo}s AND time < {min(lo + chunk, end)}s"
            for row in client.write(_derived_select(d, database, rp, interval, when)):
                written += int(row.get("written") or 0)
        lines.append(f"backfill {d.measurement}.{d.field}: {written} points written into {rp}")
    return lines


def setup_v1(
    url: str,
    database: str = "learnroom",
    *,
    raw_days: int = 90,
    rollup_days: int = 730,
    rollup_interval: str = "5m",
    username: str | None = None,
    password: str | None = None,
    backfill: bool = False,
    resample_for: str | None = "1h",
    timeout_s: float = 60.0,
) -> list[str]:
    """Make an InfluxDB 1.x ready for learnroom; idempotent, returns what it did or found.

    Creates ``database``, the default retention policy ``raw`` (``raw_days``), the rollup
    policy (``rollup_days``) and one continuous query per measurement. ``backfill`` also
    rolls up the raw data already stored, which the CQs (only looking forward) never would.
    Raises ``InfluxSetupError`` naming the statement and InfluxDB's reason.
    """
    problems = [
        f"{n} must be at least 1, not {v}"
        for n, v in (("raw_days", raw_days), ("rollup_days", rollup_days))
        if v < 1
    ]
    if problems:
        raise ConfigError(problems)
    wanted = rollup_queries(database, rollup_interval=rollup_interval, resample_for=resample_for)
    rp = rollup_rp(rollup_interval)
    client = _Client(url, username, password, timeout_s)

    names = {str(r.get("name")) for r in client.read("SHOW DATABASES")}
    if database in names:
        lines = [f"database {database}: already"]
    else:
        client.write(f"CREATE DATABASE {_ident(database)}")
        lines = [f"database {database}: created"]
    lines += _ensure_rp(client, database, RAW_RP, raw_days, default=True)
    lines += _ensure_rp(client, database, rp, rollup_days, default=False)
    lines += _ensure_cqs(client, database, wanted)
    if backfill:
        lines += _backfill(client, database, raw_days, rollup_interval)
    return lines
