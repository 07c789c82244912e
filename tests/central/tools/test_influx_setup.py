"""``setup_v1`` against a real InfluxDB 1.x: policies, continuous queries, backfilled rollups."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.central.mapping import to_lines
from gateway.central.tools.influx_setup import (
    DERIVED,
    InfluxSetupError,
    rollup_queries,
    setup_v1,
)
from gateway.central.writers import InfluxV1Writer
from gateway.errors import ConfigError
from gateway.launch.broker import free_port
from gateway.launch.influxd import Influxd
from gateway.models import (
    AlertData,
    EnvironmentData,
    EventData,
    HealthData,
    LockerData,
    OccupancyData,
    SlotState,
    StatusData,
    WifiData,
    make_envelope,
)
from tests.paths import ROOT

DB = "learnroom"
MEASUREMENTS = {
    "occupancy",
    "environment",
    "wifi",
    "locker_slot",
    "locker_door",
    "locker_event",
    "gateway",
    "alert",
}
#: start of a 5-minute window a quarter of an hour ago: inside the 90-day raw policy
WINDOW = (int(time.time()) // 300 - 3) * 300


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Influxd]:
    """A fresh InfluxDB 1.x with no database: setup has to create it."""
    if shutil.which("influxd") is None:
        pytest.fail("influxd is required; run scripts/test (installs the Debian package influxdb)")
    influx = Influxd(tmp_path / "influx")
    influx.start()
    yield influx
    influx.stop()


def rows(influx: Influxd, q: str, db: str | None = DB) -> list[dict[str, Any]]:
    return influx.rows(q, db)


def policies(influx: Influxd) -> dict[str, tuple[str, bool]]:
    found = rows(influx, f"SHOW RETENTION POLICIES ON {DB}")
    return {r["name"]: (r["duration"], r["default"]) for r in found}


def cqs(influx: Influxd) -> dict[str, str]:
    found = rows(influx, "SHOW CONTINUOUS QUERIES", None)
    return {r["name"]: r["query"] for r in found if r["_series"] == DB}


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(WINDOW + seconds, UTC)


def env(data: Any, seconds: int, room: str = "r1") -> Any:
    return make_envelope("s", room, data, at(seconds), seconds)


def test_fresh_server_gets_database_policies_and_one_query_per_measurement(server: Influxd):
    lines = setup_v1(server.url)

    assert "database learnroom: created" in lines
    assert {r["name"] for r in rows(server, "SHOW DATABASES", None)} >= {DB}
    assert policies(server)["raw"] == ("2160h0m0s", True), "90 days, and where writes go"
    assert policies(server)["rollup_5m"] == ("17520h0m0s", False), "730 days"
    queries = cqs(server)
    derived = {f"rollup_5m_{d.measurement}_{d.field}": d.measurement for d in DERIVED}
    assert set(queries) == {f"rollup_5m_{m}" for m in MEASUREMENTS} | set(derived)
    for name, text in queries.items():
        measurement = derived.get(name) or name.removeprefix("rollup_5m_")
        if name in derived:
            assert f"INTO learnroom.rollup_5m.{measurement} FROM " in text
            assert f"learnroom.raw.{measurement}" in text
            assert "GROUP BY time(5m), *" in text, "tags stay tags"
            continue
        assert f"INTO learnroom.rollup_5m.{measurement} FROM learnroom.raw.{measurement}" in text
        assert "GROUP BY time(5m), *" in text, "tags stay tags"
    gateway = queries["rollup_5m_gateway"]
    for part in ("mean(uptime_s) AS uptime_s", "last(online) AS online", "last(version)"):
        assert part in gateway, "health and status fields share one query"
    assert "sum(count) AS count" in queries["rollup_5m_locker_event"]
    assert "mean(occupied)" not in queries["rollup_5m_occupancy"], "InfluxQL cannot average it"


def test_second_run_only_reports_already_and_changes_nothing(server: Influxd):
    setup_v1(server.url)
    before = (policies(server), cqs(server))

    again = setup_v1(server.url)

    assert again, "it still says what it checked"
    assert all(line.endswith(": already") for line in again), again
    assert (policies(server), cqs(server)) == before
    assert sum(1 for name in policies(server) if name.startswith("rollup")) == 1


def test_changed_raw_days_alters_the_policy_in_place(server: Influxd):
    setup_v1(server.url)

    lines = setup_v1(server.url, raw_days=30)

    assert "retention policy raw (30d, default): altered, duration 90d -> 30d" in lines
    assert policies(server)["raw"] == ("720h0m0s", True)
    assert list(policies(server)).count("raw") == 1
    assert setup_v1(server.url, raw_days=30)[2].endswith("already")


def test_existing_database_keeps_autogen_but_raw_becomes_default(server: Influxd):
    server.query(f"CREATE DATABASE {DB}")

    lines = setup_v1(server.url)

    assert lines[0] == "database learnroom: already"
    assert "stay in autogen" in lines[1], "the user learns where older points are"
    assert policies(server)["autogen"][1] is False
    assert policies(server)["raw"][1] is True


def test_a_changed_continuous_query_is_dropped_and_recreated(server: Influxd):
    setup_v1(server.url)
    server.query("DROP CONTINUOUS QUERY rollup_5m_wifi ON learnroom")
    server.query(
        "CREATE CONTINUOUS QUERY rollup_5m_wifi ON learnroom BEGIN SELECT mean(rssi_dbm) AS "
        "rssi_dbm INTO learnroom.rollup_5m.wifi FROM learnroom.raw.wifi GROUP BY time(5m), * END"
    )
    server.query(
        "CREATE CONTINUOUS QUERY mine ON learnroom BEGIN SELECT max(people) AS people INTO "
        "learnroom.rollup_5m.peak FROM learnroom.raw.occupancy GROUP BY time(1h), * END"
    )

    lines = setup_v1(server.url)

    assert "continuous query rollup_5m_wifi: recreated" in lines
    assert "continuous query mine: not part of this setup, left alone" in lines
    queries = cqs(server)
    assert "last(bssid) AS bssid" in queries["rollup_5m_wifi"]
    assert "mine" in queries
    assert len(queries) == len(MEASUREMENTS) + len(DERIVED) + 1


def test_query_texts_match_what_influxdb_stores(server: Influxd):
    setup_v1(server.url, rollup_interval="300s", resample_for="60m")

    texts = rollup_queries(DB, rollup_interval="300s", resample_for="60m")
    queries = cqs(server)

    assert set(texts) == set(queries), "300s is named rollup_5m, as InfluxDB writes it"
    assert all(text.replace('"', "") == queries[name] for name, text in texts.items())
    assert all("RESAMPLE EVERY 5m FOR 1h" in q for q in queries.values())


def every_kind(seconds: int, room: str = "all") -> list[str]:
    """One envelope of each kind with every field set, as ingest would write them."""
    lines = []
    lines += to_lines(
        env(
            OccupancyData(people=3, occupied=True, seats_total=20, seats_free=17, capacity=24),
            seconds,
            room,
        )
    )
    lines += to_lines(
        env(
            EnvironmentData(
                co2_ppm=800,
                temperature_c=21.0,
                humidity_pct=40,
                noise_dba=35,
                illuminance_lux=300,
            ),
            seconds,
            room,
        )
    )
    lines += to_lines(
        env(
            WifiData(
                ssid="eduroam",
                bssid="ap-1",
                rssi_dbm=-60,
                bitrate_mbps=100,
                latency_ms=12,
                jitter_ms=2,
                loss_pct=0,
                dns_ms=20,
                portal_ok=True,
                ok=True,
            ),
            seconds,
            room,
        )
    )
    lockers = LockerData(door_open=True, slots=[SlotState(slot="1", present=True, charging=True)])
    lines += to_lines(env(lockers, seconds, room), "a")
    lines += to_lines(env(EventData(type="checkout", locker="a", slot="1"), seconds, room))
    lines += to_lines(
        env(
            HealthData(
                uptime_s=100,
                cpu_pct=5,
                mem_rss_mb=50,
                cpu_temp_c=45,
                disk_free_mb=1000,
                outbox_depth=0,
                outbox_dropped=0,
            ),
            seconds,
            room,
        )
    )
    lines += to_lines(env(StatusData(online=True, version="0.1.0"), seconds, room))
    lines += to_lines(
        env(AlertData(rule="co2", severity="warning", firing=True, message="lüften"), seconds, room)
    )
    return lines


def test_backfill_rolls_up_with_the_same_measurements_fields_and_tags(server: Influxd):
    setup_v1(server.url)
    result = InfluxV1Writer(server.url, DB).write(every_kind(10))  # no rp: lands in raw
    assert (result.written, result.rejected) == (len(every_kind(10)), [])

    lines = setup_v1(server.url, backfill=True)

    assert "backfill occupancy: 1 points written into rollup_5m" in lines
    for m in MEASUREMENTS:
        raw_fields = {r["fieldKey"] for r in rows(server, f"SHOW FIELD KEYS FROM raw.{m}")}
        rollup = {r["fieldKey"] for r in rows(server, f"SHOW FIELD KEYS FROM rollup_5m.{m}")}
        assert raw_fields, f"{m} was written to raw"
        extra = {d.field for d in DERIVED if d.measurement == m}
        assert rollup - extra == raw_fields, f"{m}: every field is rolled up under its own name"
        raw_tags = {r["tagKey"] for r in rows(server, f"SHOW TAG KEYS FROM raw.{m}")}
        rollup_tags = {r["tagKey"] for r in rows(server, f"SHOW TAG KEYS FROM rollup_5m.{m}")}
        assert rollup_tags == raw_tags, f"{m}: tags stay tags"


def test_backfill_means_numbers_keeps_last_state_and_sums_events(server: Influxd):
    setup_v1(server.url)
    envelopes: list[tuple[Any, str | None]] = [
        (env(OccupancyData(people=2, occupied=True), 10), None),
        (env(OccupancyData(people=5, occupied=False), 70), None),
        (env(OccupancyData(people=9, occupied=True), 310), None),  # the next window
        (env(HealthData(uptime_s=100, outbox_depth=0, outbox_dropped=0), 20), None),
        (env(HealthData(uptime_s=160, outbox_depth=4, outbox_dropped=0), 80), None),
        (env(StatusData(online=True, version="0.1.0"), 30), None),
        (env(StatusData(online=False, version="0.2.0"), 90), None),
        (env(EventData(type="checkout", locker="a", slot="1"), 40), None),
        (env(EventData(type="checkout", locker="a", slot="1"), 100), None),
        (env(EventData(type="return", locker="a", slot="1"), 160), None),
        (env(LockerData(door_open=True, slots=[SlotState(slot="1", present=False)]), 40), "a"),
        (env(LockerData(door_open=False, slots=[SlotState(slot="1", present=True)]), 100), "a"),
    ]
    lines = [line for e, sub in envelopes for line in to_lines(e, sub)]
    assert InfluxV1Writer(server.url, DB).write(lines).written == len(lines)

    setup_v1(server.url, backfill=True)

    occ = rows(server, "SELECT * FROM rollup_5m.occupancy GROUP BY *")
    by_time = {r["time"] // 1000 - WINDOW: r for r in occ}
    assert set(by_time) == {0, 300}
    assert by_time[0]["people"] == pytest.approx(3.5), "mean of 2 and 5"
    assert by_time[0]["occupied"] is False, "the last state of the window"
    assert (by_time[300]["people"], by_time[300]["occupied"]) == (9, True)
    assert (by_time[0]["site"], by_time[0]["room"]) == ("s", "r1")

    (gw,) = rows(server, "SELECT * FROM rollup_5m.gateway GROUP BY *")
    assert (gw["uptime_s"], gw["outbox_depth"]) == (pytest.approx(130), pytest.approx(2))
    assert (gw["online"], gw["version"]) == (False, "0.2.0")

    events = rows(server, "SELECT * FROM rollup_5m.locker_event GROUP BY *")
    counts = {(r["locker"], r["slot"], r["type"]): r["count"] for r in events}
    assert counts == {("a", "1", "checkout"): 2, ("a", "1", "return"): 1}

    (door,) = rows(server, "SELECT * FROM rollup_5m.locker_door GROUP BY *")
    (slot,) = rows(server, "SELECT * FROM rollup_5m.locker_slot GROUP BY *")
    assert (door["locker"], door["open"], slot["slot"], slot["present"]) == ("a", False, "1", True)

    assert rows(server, "SELECT * FROM raw.occupancy") != [], "the raw points stay"


def test_backfill_twice_gives_the_same_rollup(server: Influxd):
    setup_v1(server.url)
    lines = to_lines(env(OccupancyData(people=2, occupied=True), 10))
    lines += to_lines(env(OccupancyData(people=4, occupied=True), 20))
    InfluxV1Writer(server.url, DB).write(lines)

    setup_v1(server.url, backfill=True)
    setup_v1(server.url, backfill=True)

    (row,) = rows(server, "SELECT * FROM rollup_5m.occupancy")
    assert row["people"] == pytest.approx(3.0)


def test_unreachable_server_names_the_url():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(InfluxSetupError, match=r"cannot reach InfluxDB at http://127\.0\.0\.1"):
        setup_v1(url, timeout_s=2)


def test_a_refused_statement_is_named_with_influxdbs_reason(server: Influxd):
    setup_v1(server.url)
    with pytest.raises(InfluxSetupError) as caught:
        setup_v1(server.url, rollup_days=1)  # shorter than the policy's 7-day shards
    message = str(caught.value)
    assert 'ALTER RETENTION POLICY "rollup_5m" ON "learnroom" DURATION 1d' in message
    assert "greater than the shard duration" in message


def test_bad_arguments_are_config_errors_before_any_request():
    with pytest.raises(ConfigError, match="raw_days"):
        setup_v1("http://127.0.0.1:9", raw_days=0)
    with pytest.raises(ConfigError, match="not a duration"):
        setup_v1("http://127.0.0.1:9", rollup_interval="5 minutes")


def test_credentials_are_checked_and_the_error_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    if shutil.which("influxd") is None:
        pytest.fail("influxd is required; run scripts/test (installs the Debian package influxdb)")
    monkeypatch.setenv("INFLUXDB_HTTP_AUTH_ENABLED", "true")  # influxd reads it over its config
    influx = Influxd(tmp_path / "auth")
    influx.start()
    try:
        # with auth on and no user yet, InfluxDB allows creating the first admin
        influx.query("CREATE USER admin WITH PASSWORD 'secret' WITH ALL PRIVILEGES")
        with pytest.raises(InfluxSetupError, match="check the username and password"):
            setup_v1(influx.url)
        with pytest.raises(InfluxSetupError, match="check the username and password"):
            setup_v1(influx.url, username="admin", password="wrong")  # noqa: S106
        lines = setup_v1(influx.url, username="admin", password="secret")  # noqa: S106
        assert "database learnroom: created" in lines
    finally:
        influx.stop()


def test_the_influxdb2_task_aggregates_the_same_fields_as_the_continuous_queries():
    import re

    flux = (ROOT / "deploy/central/downsample-5m.flux").read_text()
    cq_text = " ".join(rollup_queries().values())
    for fn in ("mean", "last", "sum"):
        listed = re.search(rf"^{fn}_fields = \[(.*?)\]", flux, re.MULTILINE | re.DOTALL)
        assert listed is not None, f"{fn}_fields in downsample-5m.flux"
        in_flux = set(re.findall(r'"(\w+)"', listed[1]))
        assert in_flux == set(re.findall(rf'{fn}\("(\w+)"\)', cq_text)), fn
        assert f"fn: {fn}," in flux


def test_the_command_sets_up_and_says_already_the_second_time(server: Influxd):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "gateway", "influx-setup", "--influx", f"{server.url}?db=cli"]
    first = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout
    second = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stdout
    assert "already" in second.stdout
    rps = server.query("SHOW RETENTION POLICIES ON cli")["results"][0]["series"][0]["values"]
    assert {(rp[0], rp[1], rp[-1]) for rp in rps} >= {("raw", "2160h0m0s", True)}
