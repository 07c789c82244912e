"""The Grafana dashboards and provisioning: valid, committed as generated, and every query
answered by a real InfluxDB 1.x filled by simulated rooms through the real agent and ingest.

No Grafana runs here, so its query pipeline is re-enacted with its own rules (Grafana 11):
the frontend replaces template variables, multi-value ones in regex form, each value escaped
with ``escapeRegex`` and several joined as ``(a|b)``; the backend
(``pkg/tsdb/influxdb/models/query.go``) then replaces ``$timeFilter`` with
``time >= <from>ms and time <= <to>ms`` and ``$interval``/``$__interval`` with the request's
interval, formatted by ``gtime.FormatInterval``, which the frontend computed from the time
range and the panel's data points (``rangeutil.calculateInterval``, ``roundInterval``).
"""

from __future__ import annotations

import copy
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.cog.runtime import Runtime
from grafana_foundation_sdk.models.dashboard import Dashboard as SchemaDashboard

from gateway.central.config import AlertsSection
from gateway.central.thresholds import RULE_NAMES
from gateway.central.tools import dashboards as gen
from gateway.central.tools.influx_setup import setup_v1
from gateway.launch.broker import Mosquitto, free_port, mosquitto_path
from gateway.launch.influxd import Influxd
from gateway.models import (
    AlertData,
    EnvironmentData,
    EventData,
    HealthData,
    OccupancyData,
    StatusData,
    WifiData,
    make_envelope,
)
from tests.central.util import (
    DB,
    Publisher,
    central_config,
    metrics_text,
    running_ingest,
    wait_for,
)
from tests.paths import ROOT

GRAFANA = ROOT / "grafana"
DASHBOARD_DIR = GRAFANA / "dashboards"
ROOMS = [("stadtbuecherei-mitte", "lernraum-1"), ("schule-nord", "raum-204")]
#: A gateway on real hardware, scripted (``_scripted_pi``).
PI = ("stadtbuecherei-mitte", "lernraum-pi")
SIM_SECONDS = 15
SPEED = 600
MAX_DATA_POINTS = 1000
MIN_INTERVAL_MS = 30_000  # the data source's jsonData.timeInterval (the report interval)


# --- Grafana's rules, re-enacted ----------------------------------------------------------


def escape_regex(value: str) -> str:
    """``escapeRegex`` of @grafana/data."""
    return re.sub(r"[\\^$*+?.()|\[\]{}/]", lambda m: "\\" + m.group(0), value)


def regex_format(values: list[str]) -> str:
    """The InfluxDB source's ``interpolateQueryExpr`` for a multi-value variable."""
    escaped = [escape_regex(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


_ROUND = [  # rangeutil.roundInterval: (below this many ms, use this interval)
    (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1500, 1000),
    (3500, 2000), (7500, 5000), (12500, 10000), (17500, 15000), (25000, 20000),
    (45000, 30000), (90000, 60000), (210000, 120000), (450000, 300000), (750000, 600000),
    (1050000, 900000), (1500000, 1200000), (2700000, 1800000), (5400000, 3600000),
    (9000000, 7200000), (16200000, 10800000), (32400000, 21600000), (86400000, 43200000),
    (604800000, 86400000), (1814400000, 604800000), (3628800000, 2592000000),
]  # fmt: skip


def round_interval(ms: float) -> int:
    return next((out for below, out in _ROUND if ms < below), 31536000000)


def calculate_interval_ms(from_ms: int, to_ms: int) -> int:
    return max(MIN_INTERVAL_MS, round_interval((to_ms - from_ms) / MAX_DATA_POINTS))


def format_interval(ms: int) -> str:
    """``gtime.FormatInterval``."""
    for unit, size in (("y", 365 * 86400_000), ("d", 86400_000), ("h", 3600_000)):
        if ms >= size:
            return f"{ms // size}{unit}"
    for unit, size in (("m", 60_000), ("s", 1000)):
        if ms >= size:
            return f"{ms // size}{unit}"
    return f"{ms}ms" if ms >= 1 else "1ms"


_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?::(\w+))?\}")


def interpolate(query: str, values: dict[str, list[str]], from_ms: int, to_ms: int) -> str:
    """What InfluxDB receives for a raw InfluxQL target (frontend, then backend)."""

    def frontend(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        if name not in values:
            return m.group(0)  # Grafana leaves what it does not know
        chosen = values[name]
        return chosen[0] if name == "open_hours" else regex_format(chosen)

    out = _VARIABLE.sub(frontend, query)
    interval_ms = calculate_interval_ms(from_ms, to_ms)
    text = format_interval(interval_ms)
    out = out.replace("$timeFilter", f"time >= {from_ms}ms and time <= {to_ms}ms")
    out = out.replace("$interval", text)
    out = out.replace("$__interval_ms", str(interval_ms))
    return out.replace("$__interval", text)


def test_the_interpolation_follows_grafana():
    q = 'SELECT 1 FROM "m" WHERE "site" =~ /^$site$/ AND $timeFilter GROUP BY time($__interval)'
    six_hours = 6 * 3600_000
    assert interpolate(q, {"site": ["a", "b-c"]}, 0, six_hours) == (
        'SELECT 1 FROM "m" WHERE "site" =~ /^(a|b-c)$/ AND time >= 0ms and time <= '
        f"{six_hours}ms GROUP BY time(30s)"
    )
    assert interpolate("/^$site$/", {"site": ["a.b"]}, 0, 1) == r"/^a\.b$/"
    assert interpolate("$__interval", {}, 0, 7 * 86400_000) == "10m"
    assert interpolate("$__interval_ms", {}, 0, 30 * 86400_000) == "1800000"
    assert interpolate("$nope", {}, 0, 1) == "$nope"


# --- the data --------------------------------------------------------------------------------


@dataclass
class Filled:
    influxd: Influxd
    start: datetime
    metrics: str

    def query(self, q: str) -> Any:
        return self.influxd.query(q, DB)


def sim_start(now: datetime) -> datetime:
    """The newest 09:00 in Berlin at least 3 hours ago: the simulated morning lies in the past
    (so ``now-7d`` panels see it) and in opening hours (people, loans, stuffy air)."""
    berlin = now.astimezone(ZoneInfo("Europe/Berlin"))
    start = berlin.replace(hour=9, minute=0, second=0, microsecond=0)
    while start > now - timedelta(hours=3):
        start -= timedelta(days=1)
    return start.astimezone(UTC)


def _scripted_pi(pub: Publisher, start: datetime, sim_rooms: list[tuple[str, str]]) -> None:
    """A gateway on real hardware in a room nobody airs (CPU temperature, CO2 up to the
    critical band: the simulator has neither), and alert envelopes as ``learnroom alerts``
    publishes them (one overdue device, one firing, one resolved)."""
    site, room = PI
    p = f"learnroom/v1/{site}/{room}"
    status = StatusData(online=True, version="test", started=start)
    pub.publish(
        f"{p}/status", make_envelope(site, room, status, start, 0).model_dump_json().encode()
    )
    seq = 0
    for i in range(1, 60):
        at = start + timedelta(minutes=i)
        people = min(i, 25)
        readings: list[tuple[str, HealthData | OccupancyData | EnvironmentData | WifiData]] = [
            (
                "health",
                HealthData(
                    uptime_s=60.0 * i, cpu_temp_c=48.0 + i % 7, outbox_depth=0, outbox_dropped=0
                ),
            ),
            ("occupancy", OccupancyData(people=people, occupied=True, capacity=25)),
            # a room whose windows stay shut: through all three CO2 bands within the hour
            (
                "environment",
                EnvironmentData(
                    co2_ppm=500.0 + 40 * i, temperature_c=22.0, humidity_pct=45.0, occupied=True
                ),
            ),
            # the access point fails for a quarter of an hour
            ("wifi", WifiData(ssid="pi-public", rssi_dbm=-80.0, ok=not 20 <= i < 35)),
        ]
        for kind, data in readings:
            seq += 1
            env = make_envelope(site, room, data, at, seq)
            pub.publish(f"{p}/{kind}", env.model_dump_json().encode())
    alerts = [
        (sim_rooms[0], "device_overdue", "warning", True, "Device a/2 is overdue"),
        (sim_rooms[1], "co2_ventilate", "warning", True, "CO2 above 1000 ppm: air the room"),
        (sim_rooms[1], "wifi_degraded", "warning", False, "Wi-Fi degraded"),
    ]
    for (a_site, a_room), rule, severity, firing, message in alerts:
        assert rule in RULE_NAMES
        alert = AlertData(rule=rule, severity=severity, firing=firing, message=message)
        env = make_envelope(a_site, a_room, alert, start + timedelta(minutes=30), None)
        topic = f"learnroom/v1/{a_site}/{a_room}/alerts/{rule}"
        pub.publish(topic, env.model_dump_json(exclude_none=True).encode())
    checkout = EventData(type="checkout", locker="a", slot="1")
    env = make_envelope(site, room, checkout, start + timedelta(minutes=5), seq + 1)
    pub.publish(f"{p}/events", env.model_dump_json().encode())
    # one message the ingest rejects, so that its rejected counter has a reason label
    pub.publish(f"{p}/health", b"not json")


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    """Two simulated rooms (~2.5 simulated hours each) and the scripted Pi, once per module."""
    if mosquitto_path() is None:
        pytest.fail("mosquitto is required; run scripts/test (Debian package mosquitto)")
    tmp = tmp_path_factory.mktemp("dashboards")
    broker = Mosquitto(tmp / "mosquitto")
    influxd = Influxd(tmp / "influxdb")
    influxd.start()
    influxd.query("CREATE DATABASE learnroom")
    setup_v1(influxd.url, DB)  # raw the default policy, the rollup and its queries
    start = sim_start(datetime.now(UTC))
    metrics_port = free_port()
    try:
        with broker.running():
            config = central_config(broker, influxd, tmp, metrics_port=metrics_port)
            with running_ingest(config) as ingest:
                agents = [
                    subprocess.Popen(
                        [
                            *(sys.executable, "-m", "gateway", "agent", "--simulate"),
                            *("--site", site, "--room", room, "--mqtt", broker.url),
                            *("--speed", str(SPEED), "--start", start.isoformat()),
                            *("--state-dir", str(tmp / room), "--seed", room),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                    for site, room in ROOMS
                ]
                pub = Publisher(broker.port)
                _scripted_pi(pub, start, ROOMS)
                time.sleep(SIM_SECONDS)  # the simulated clock runs on the real one
                for proc in agents:
                    proc.send_signal(signal.SIGTERM)
                for proc in agents:
                    assert proc.wait(20) == 0
                pub.close()
                wait_for(lambda: ingest.pending() == 0, 20, "the ingest has written all")
                assert ingest.wait_idle(20)
                metrics = metrics_text(f"http://127.0.0.1:{metrics_port}/metrics")
        # the continuous queries only look back an hour: roll up the simulated morning
        setup_v1(influxd.url, DB, backfill=True)
        yield Filled(influxd, start, metrics)
    finally:
        influxd.stop()


# --- committed files ------------------------------------------------------------------------


def all_dashboards() -> list[gen.Dashboard]:
    return gen.dashboards()


def test_the_committed_json_is_the_generators_output():
    expected = {gen.file_name(d): gen.render(d) for d in all_dashboards()}
    committed = {p.name: p.read_text(encoding="utf-8") for p in DASHBOARD_DIR.glob("*.json")}
    assert sorted(committed) == sorted(expected), "run: python -m gateway.central.tools.dashboards"
    for name, text in expected.items():
        assert committed[name] == text, f"{name} is stale; regenerate it"


def test_the_generator_writes_what_it_renders(tmp_path: Path):
    assert gen.main([str(tmp_path)]) == 0
    for d in all_dashboards():
        assert (tmp_path / gen.file_name(d)).read_text(encoding="utf-8") == gen.render(d)
    assert gen.main([]) == 2


# --- structure ----------------------------------------------------------------------------


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DASHBOARD_DIR / name).read_text(encoding="utf-8"))
    return data


def committed() -> list[dict[str, Any]]:
    return [load(gen.file_name(d)) for d in all_dashboards()]


def provisioned_datasources() -> dict[str, str]:
    data = yaml.safe_load((GRAFANA / "provisioning/datasources/learnroom.yaml").read_text())
    return {ds["uid"]: ds["type"] for ds in data["datasources"]}


def variable_refs(text: str) -> set[str]:
    names = set()
    for m in _VARIABLE.finditer(text):
        names.add(m.group(1) or m.group(2) or m.group(4))
    return names


#: Grafana's own variables and the InfluxDB backend's macros.
BUILTIN = {"timeFilter", "interval", "__interval", "__interval_ms", "__rate_interval", "__range"}
BUILTIN_LINK = re.compile(r"\$\{__(url_time_range|field\.labels\.\w+|data\.fields\.\w+)\}")


def links_of(obj: Any) -> list[str]:
    """Every ``url`` anywhere in a panel: panel links, data links, overrides."""
    if isinstance(obj, dict):
        found = [obj["url"]] if isinstance(obj.get("url"), str) else []
        return found + [u for v in obj.values() for u in links_of(v)]
    if isinstance(obj, list):
        return [u for v in obj for u in links_of(v)]
    return []


@pytest.mark.parametrize("name", [gen.file_name(d) for d in gen.dashboards()])
def test_every_dashboard_is_valid(name: str):
    dash = load(name)
    uids = {d["uid"] for d in committed()}
    assert dash["schemaVersion"] == gen.SCHEMA_VERSION >= 36
    assert dash["uid"] and dash["title"] and dash["description"]
    panels = dash["panels"]
    assert panels
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids {ids}"
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["y"] >= 0 and g["w"] >= 1 and g["h"] >= 1, p["title"]
        assert g["x"] + g["w"] <= gen.GRID_COLUMNS, f"{p['title']} leaves the grid"
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]
        assert p["title"].strip() and len(p["description"]) > 30, p["title"]
        assert p["targets"], p["title"]
    sources = provisioned_datasources()
    for p in panels:
        for t in [p, *p["targets"]]:
            ds = t["datasource"]
            assert sources.get(ds["uid"]) == ds["type"], f"{p['title']}: {ds} not provisioned"
    # variables: each defined before use, in later variables and in every query
    defined: set[str] = set()
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            assert var["datasource"]["uid"] in sources
            assert variable_refs(var["query"]) <= defined, f"{var['name']} used too early"
        defined.add(var["name"])
    for p in panels:
        for t in p["targets"]:
            text = t.get("query") or t.get("expr") or ""
            assert variable_refs(text) - BUILTIN <= defined, f"{p['title']}: {text}"
    # links: dashboard links and data links go to existing dashboards by uid
    urls = [link["url"] for link in dash["links"]] + [u for p in panels for u in links_of(p)]
    assert urls
    for url in urls:
        target = re.match(r"^/d/([\w-]+)", url)
        if target:
            assert target.group(1) in uids, f"link to unknown dashboard {url}"
            names = variable_refs(BUILTIN_LINK.sub("", url))
            assert names <= defined, url
        else:
            assert url.startswith("/alerting/groups?alertmanager="), url
            assert url.split("=", 1)[1] in sources


def test_every_dashboard_links_the_others_and_alerts_link_the_room_detail():
    uids = {d["uid"] for d in committed()}
    assert uids == {gen.ROOMS_UID, gen.ROOM_UID, gen.IT_UID, gen.DISPLAY_UID}
    for dash in committed():
        linked = {re.sub(r"^/d/", "", link["url"]) for link in dash["links"]}
        assert uids - {dash["uid"]} <= linked
    assert AlertsSection().room_dashboard_uid == gen.ROOM_UID
    room = load(gen.file_name(gen.room_dashboard()))
    assert [v["name"] for v in room["templating"]["list"]][:2] == ["site", "room"]


def test_units_thresholds_and_bands_come_from_the_contract():
    rooms = load(gen.file_name(gen.rooms_dashboard()))
    co2 = next(p for p in rooms["panels"] if p["title"] == "Air quality (CO2)")
    steps = co2["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 1000.0, 2000.0]
    assert [s["color"] for s in steps] == ["green", "orange", "red"]
    assert co2["fieldConfig"]["defaults"]["unit"] == "ppm"
    room = load(gen.file_name(gen.room_dashboard()))
    rssi = next(p for p in room["panels"] if p["title"] == "Wi-Fi signal")
    assert rssi["fieldConfig"]["defaults"]["thresholds"]["steps"][1]["value"] == -75.0
    for dash in committed():
        for p in dash["panels"]:
            assert p["fieldConfig"]["defaults"]["thresholds"]["steps"], p["title"]
    display = load(gen.file_name(gen.display_dashboard()))
    assert display["timepicker"]["hidden"] and display["refresh"] == "30s"


# --- Grafana's published schema ------------------------------------------------------------
#
# grafana-foundation-sdk is generated from Grafana's own schema (11.6 here) but ships no JSON
# Schema, and its ``from_json`` drops keys it does not know. So the check is a round trip:
# every key of our JSON must survive decoding and encoding again; one that does not is a key
# Grafana 11 no longer (or never) knew, which it ignores just as silently.

#: A query variable's ``definition``: the text Grafana's own editor writes and shows in the
#: variables list, absent from the published schema. Nothing else is tolerated.
TOLERATED = re.compile(r"^\$\.templating\.list\[\d+\]\.definition$")
#: InfluxDB queries: the SDK has no model for them (its ``UnknownDataquery`` keeps any key), so
#: their keys go unchecked; what they ask is checked against a real InfluxDB below.
UNMODELLED_QUERY_TYPES = {"influxdb"}


def _lost(src: Any, out: Any, path: str) -> list[str]:
    """Paths in ``src`` that the round trip ``out`` lost; None counts as absent, as in the SDK."""
    if isinstance(src, dict):
        if not isinstance(out, dict):
            return [f"{path}: an object where the schema has {type(out).__name__}"]
        lost = []
        for key, value in src.items():
            at = f"{path}.{key}"
            if value is None or TOLERATED.match(at):
                continue
            lost += [f"{at}: not in the schema"] if key not in out else _lost(value, out[key], at)
        return lost
    if isinstance(src, list):
        if not isinstance(out, list):
            return [f"{path}: a list where the schema has {type(out).__name__}"]
        lost = [f"{path}[{i}]: dropped" for i in range(len(out), len(src))]
        return lost + [
            e
            for i, (a, b) in enumerate(zip(src, out, strict=False))
            for e in _lost(a, b, f"{path}[{i}]")
        ]
    return []


def schema_findings(dash: dict[str, Any]) -> list[str]:
    """What Grafana 11.6's schema does not know in ``dash``, and what it cannot check."""
    register_default_plugins()  # the panels' options and the queries' models
    runtime = Runtime()
    model = SchemaDashboard.from_json(copy.deepcopy(dash))
    findings = _lost(dash, json.loads(json.dumps(model, cls=JSONEncoder)), "$")
    panels = list(dash.get("panels", []))
    panels += [inner for p in panels for inner in p.get("panels", [])]  # collapsed rows
    for p in panels:
        if p["type"] not in {*runtime.panelcfg_variants, "row"}:
            findings.append(f"panel {p['id']}: type {p['type']!r} has no schema, unchecked")
        for t in p.get("targets", []):
            kind = t.get("datasource", p.get("datasource", {})).get("type")
            if kind not in {*runtime.dataquery_variants, *UNMODELLED_QUERY_TYPES}:
                findings.append(f"panel {p['id']} {t['refId']}: {kind!r} query has no schema")
    return findings


@pytest.mark.parametrize("name", [gen.file_name(d) for d in gen.dashboards()])
def test_every_dashboard_keeps_to_grafanas_published_schema(name: str):
    assert schema_findings(load(name)) == []


@pytest.mark.parametrize(
    ("uid", "path", "expected"),
    [
        # the dashboard key Grafana 11 removed, where it was and on a panel
        (gen.ROOMS_UID, ["panels", 0, "style"], "$.panels[0].style"),
        (gen.ROOMS_UID, ["style"], "$.style"),
        # typos inside a panel's options, its field config and a Prometheus query (IT: 11th)
        (gen.ROOMS_UID, ["panels", 0, "options", "graphmode"], "$.panels[0].options.graphmode"),
        (
            gen.ROOM_UID,
            ["panels", 0, "fieldConfig", "defaults", "custom", "lineWidht"],
            "$.panels[0].fieldConfig.defaults.custom.lineWidht",
        ),
        (gen.IT_UID, ["panels", 10, "targets", 0, "exprr"], "$.panels[10].targets[0].exprr"),
        # tolerated on a variable, nowhere else
        (gen.ROOMS_UID, ["panels", 0, "definition"], "$.panels[0].definition"),
    ],
)
def test_the_schema_check_finds_a_planted_unknown_key(
    uid: str, path: list[str | int], expected: str
):
    dash = load(f"{uid}.json")
    parent: Any = dash
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = "dark"
    assert schema_findings(dash) == [f"{expected}: not in the schema"]


def test_the_schema_check_names_what_it_cannot_check():
    dash = load(f"{gen.DISPLAY_UID}.json")
    dash["panels"][0]["type"] = "learnroom-floorplan"
    dash["panels"][1]["targets"][0]["datasource"] = {"type": "mysql", "uid": "x"}
    assert schema_findings(dash) == [
        "panel 1: type 'learnroom-floorplan' has no schema, unchecked",
        "panel 2 A: 'mysql' query has no schema",
    ]


# --- every query against the database ------------------------------------------------------


def influx_targets() -> list[tuple[str, int, dict[str, Any], dict[str, Any], tuple[str, ...]]]:
    out = []
    for d in all_dashboards():
        dash = load(gen.file_name(d))
        expects = d.expects
        for p in dash["panels"]:
            for t in p["targets"]:
                if t["datasource"]["uid"] == gen.INFLUX_UID:
                    out.append((d.uid, p["id"], p, t, expects[(p["id"], t["refId"])]))
    return out


def tag_values(filled: Filled, dash: dict[str, Any]) -> dict[str, list[str]]:
    """Each variable set to "All", its options found by its own query, as Grafana does."""
    values: dict[str, list[str]] = {}
    for var in dash["templating"]["list"]:
        if var["type"] == "textbox":
            values[var["name"]] = [var["query"]]
            continue
        q = interpolate(var["query"], values, 0, 1)
        series = filled.query(q)["results"][0].get("series", [])
        found = sorted({row[1] for s in series for row in s["values"]})
        assert found, f"variable {var['name']}: {q} found nothing"
        values[var["name"]] = found
    return values


def time_range(filled: Filled, panel: dict[str, Any]) -> tuple[int, int]:
    """The dashboard's range as a user would pick it around the simulated morning; a panel's
    relative override (``timeFrom``) counts from now, as in Grafana."""
    now = int(time.time() * 1000)
    if "timeFrom" in panel:
        days = int(panel["timeFrom"].removesuffix("d"))
        return now - days * 86400_000, now
    start = int(filled.start.timestamp() * 1000)
    return start - 10 * 60_000, start + 3 * 3600_000


def columns_with_values(series: list[dict[str, Any]]) -> set[str]:
    out = set()
    for s in series:
        out |= {k for k, v in s.get("tags", {}).items() if v}
        for i, name in enumerate(s["columns"]):
            if any(row[i] is not None for row in s["values"]):
                out.add(name)
    return out


TARGETS = influx_targets()


@pytest.mark.parametrize(
    ("uid", "pid", "panel", "target", "expects"),
    TARGETS,
    ids=[f"{uid}-{p['title']}-{t['refId']}" for uid, _, p, t, _ in TARGETS],
)
def test_every_influxql_query_returns_what_its_panel_shows(
    filled: Filled,
    uid: str,
    pid: int,
    panel: dict[str, Any],
    target: dict[str, Any],
    expects: tuple[str, ...],
):
    dash = load(f"{uid}.json")
    from_ms, to_ms = time_range(filled, panel)
    q = interpolate(target["query"], tag_values(filled, dash), from_ms, to_ms)
    assert not re.search(r"\$\w", q), f"not interpolated: {q}"
    result = filled.query(q)["results"][0]
    assert "error" not in result, f"{result['error']}: {q}"
    series = result.get("series", [])
    assert series, f"{panel['title']} ({target['refId']}) shows nothing: {q}"
    assert expects, "the generator names the columns each target's panel reads"
    missing = set(expects) - columns_with_values(series)
    assert not missing, f"{panel['title']}: no values for {sorted(missing)}: {q}"
    for tag in re.findall(r"\$tag_(\w+)", target.get("alias", "")):
        assert all(tag in s.get("tags", {}) for s in series), f"alias needs GROUP BY {tag}"


def test_the_queries_see_each_room_on_its_own(filled: Filled):
    """With one room chosen, a room query returns that room only (the regex is anchored)."""
    dash = load(f"{gen.ROOM_UID}.json")
    panel = next(p for p in dash["panels"] if p["title"] == "Air quality (CO2)")
    for site, room in ROOMS:
        values = {"site": [site], "room": [room], "open_hours": ["12"]}
        q = interpolate(panel["targets"][0]["query"], values, *time_range(filled, panel))
        series = filled.query(q)["results"][0]["series"]
        assert {s["tags"]["room"] for s in series} == {room}


def test_the_ventilation_report_adds_up(filled: Filled):
    """Minutes in the three CO2 bands (one query over the rollup) together are the minutes
    with a CO2 reading taken while the room was occupied, counted from the raw points; and
    the scripted Pi's shut room (occupied, CO2 rising 40 ppm a minute) lands in each band."""
    dash = load(f"{gen.ROOM_UID}.json")
    panel = next(p for p in dash["panels"] if p["title"] == "Ventilation report")
    values = tag_values(filled, dash)
    span = time_range(filled, panel)
    (bands,) = [t for t in panel["targets"] if "occupied_min_fine" in t["query"]]
    res = filled.query(interpolate(bands["query"], values, *span))["results"][0]
    per_room = {s["tags"]["room"]: s["values"][0][1:] for s in res["series"]}
    per_band = {room: sum(v or 0 for v in minutes) for room, minutes in per_room.items()}
    minutes = filled.query(
        interpolate(
            'SELECT count("c") FROM (SELECT mean("co2_ppm") AS "c" FROM "environment" '
            'WHERE "occupied" = true AND $timeFilter GROUP BY time(1m), "room" fill(none)) '
            'WHERE $timeFilter GROUP BY "room"',
            {},
            *span,
        )
    )["results"][0]["series"]
    assert per_band == {s["tags"]["room"]: s["values"][0][1] for s in minutes}
    assert sum(per_band.values()) > 100
    # minute i (1..59) reads 500 + 40 i ppm: fine for i <= 12, ventilate to i = 37, then critical
    assert per_room[PI[1]] == [12, 25, 22]


def test_the_prometheus_panels_ask_for_metrics_the_ingest_exposes(filled: Filled):
    samples: dict[str, set[str]] = {}
    for line in filled.metrics.splitlines():
        m = re.match(r"^([a-z_]+)(?:\{(.*)\})? ", line)
        if m:
            labels = set(re.findall(r"(\w+)=", m.group(2) or ""))
            samples.setdefault(m.group(1), set()).update(labels)
    it = load(f"{gen.IT_UID}.json")
    exprs = [
        t["expr"]
        for p in it["panels"]
        for t in p["targets"]
        if t["datasource"]["uid"] == gen.PROMETHEUS_UID
    ]
    assert len(exprs) >= 5
    used = set()
    for expr in exprs:
        for name in re.findall(r"learnroom_\w+", expr):
            used.add(name)
            assert name in samples, f"{name} is not on the ingest's /metrics"
            labels = set(re.findall(r"(\w+)=~", expr)) | {
                label.strip()
                for group in re.findall(r"by \(([^)]*)\)", expr)
                for label in group.split(",")
            }
            assert labels <= samples[name], f"{expr}: {name} has labels {samples[name]}"
    assert {
        "learnroom_ingest_messages_rejected_total",
        "learnroom_ingest_seq_missing",
        "learnroom_ingest_seq_lost_total",
        "learnroom_ingest_pending_messages",
        "learnroom_ingest_writer_up",
    } <= used


# --- provisioning ---------------------------------------------------------------------------


def test_the_provisioning_parses_and_names_what_exists():
    ds_file = yaml.safe_load((GRAFANA / "provisioning/datasources/learnroom.yaml").read_text())
    assert ds_file["apiVersion"] == 1
    by_uid = {ds["uid"]: ds for ds in ds_file["datasources"]}
    assert set(by_uid) >= {gen.INFLUX_UID, gen.PROMETHEUS_UID, gen.ALERTMANAGER_UID}
    influx = by_uid[gen.INFLUX_UID]
    assert influx["type"] == "influxdb"
    assert influx["jsonData"]["version"] == "InfluxQL"
    assert influx["jsonData"]["dbName"] == "${INFLUX_DB}"
    assert influx["jsonData"]["timeInterval"] == f"{MIN_INTERVAL_MS // 1000}s"
    assert influx["url"] == "${INFLUX_URL}"
    assert by_uid[gen.ALERTMANAGER_UID]["type"] == "alertmanager"
    assert by_uid[gen.PROMETHEUS_UID]["type"] == "prometheus"
    assert sum(1 for ds in ds_file["datasources"] if ds.get("isDefault")) == 1
    # every ${VAR} is one the compose file or the README sets
    compose = yaml.safe_load((ROOT / "deploy/central/compose.yaml").read_text())
    grafana_env = set(compose["services"]["grafana"]["environment"])
    readme = (GRAFANA / "README.md").read_text()
    for var in re.findall(
        r"\$\{(\w+)\}", (GRAFANA / "provisioning/datasources/learnroom.yaml").read_text()
    ):
        assert var in grafana_env or f"`{var}`" in readme, f"{var} is explained nowhere"

    dash_file = yaml.safe_load((GRAFANA / "provisioning/dashboards/learnroom.yaml").read_text())
    (provider,) = dash_file["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    mounts = dict(
        v.rsplit(":", 2)[:2] for v in compose["services"]["grafana"]["volumes"] if ":" in v
    )
    host = next(src for src, dst in mounts.items() if dst == path)
    directory = (ROOT / "deploy/central" / host).resolve()
    assert directory == DASHBOARD_DIR
    assert sorted(p.name for p in directory.glob("*.json")) == sorted(
        gen.file_name(d) for d in all_dashboards()
    )
    assert "../../grafana/provisioning" in mounts


def test_the_readme_describes_every_dashboard_and_panel():
    readme = (GRAFANA / "README.md").read_text()
    for dash in committed():
        assert dash["title"] in readme, dash["title"]
        for p in dash["panels"]:
            assert f"**{p['title']}**" in readme, f"README misses panel {p['title']!r}"
