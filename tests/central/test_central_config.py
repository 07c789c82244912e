"""The central config: the shipped example is valid, mistakes name file and field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.central.config import (
    load_central_config,
    parse_central,
    parse_influx_url,
    subscription,
)
from gateway.central.thresholds import Rules
from gateway.config import state_home
from gateway.errors import ConfigError
from tests.paths import ROOT

EXAMPLE = ROOT / "deploy" / "central" / "central.example.toml"


def test_the_shipped_example_is_valid_and_checked_by_the_cli():
    config = load_central_config(EXAMPLE, environ={})
    assert config.influx is not None
    assert config.influx.version == 1
    assert subscription(config) == "$share/learnroom-ingest/learnroom/v1/#"
    # a relative state file lives in the state directory, never beside /etc's config
    assert config.ingest.rejected_file == state_home({}) / "rejected.jsonl"
    # the example lists every rule with its defaults: it documents them, so it must be true
    assert config.alerts.rules == Rules()
    assert config.alerts.rules_for("gesamtschule-nord", "r").co2_ventilate.threshold == 1200
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", str(EXAMPLE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "central config" in out.stdout


def test_every_mistake_is_reported_with_file_and_field(tmp_path: Path):
    bad = tmp_path / "central.toml"
    bad.write_text(
        '[influx]\nurl = "localhost:8086"\ndatabase = "x"\n'
        '[ingest]\nbatch_lines = 0\nshared_group = "a/b"\nbatchsize = 3\n'
    )
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 1
    err = out.stderr
    assert f"{bad}: influx.url: expected http://host:port" in err
    assert f"{bad}: ingest.batch_lines:" in err
    assert f"{bad}: ingest.shared_group: a share group name has no '/'" in err
    assert f"{bad}: ingest.batchsize: unknown key" in err
    assert "4 problem(s)" in err


def test_influxdb_2_needs_org_bucket_and_a_token_from_file_or_environment():
    raw = {"influx": {"url": "http://db:8086", "org": "o", "bucket": "b"}}
    with pytest.raises(ConfigError, match="needs a token"):
        parse_central(raw, "c.toml", environ={})
    config = parse_central(raw, "c.toml", environ={"LEARNROOM_INFLUX_TOKEN": "t0ken"})
    assert config.influx is not None
    assert (config.influx.version, config.influx.token) == (2, "t0ken")
    with pytest.raises(ConfigError, match="not both"):
        parse_central({"influx": raw["influx"] | {"database": "x"}}, "c.toml", environ={})


def test_the_influx_flag_follows_the_databases_own_write_parameters():
    v1 = parse_influx_url(
        "http://db:8086?db=rooms&rp=raw",
        None,
        {"LEARNROOM_INFLUX_USERNAME": "u", "LEARNROOM_INFLUX_PASSWORD": "p"},
    )
    assert (v1.url, v1.database, v1.retention_policy, v1.username, v1.password) == (
        "http://db:8086",
        "rooms",
        "raw",
        "u",
        "p",
    )
    v2 = parse_influx_url(
        "https://cloud.example?org=lib&bucket=rooms", None, {"LEARNROOM_INFLUX_TOKEN": "secret"}
    )
    assert (v2.version, v2.org, v2.bucket, v2.token) == (2, "lib", "rooms", "secret")
    for wrong in ("db:8086?db=x", "http://db:8086?database=x", "mqtt://db", "http://u:p@db?db=x"):
        with pytest.raises(ConfigError, match="--influx"):
            parse_influx_url(wrong, None, {})


def test_state_directory_precedence(tmp_path):
    """--state-dir over the file's state_dir over systemd's $STATE_DIRECTORY over XDG."""
    path = tmp_path / "central.toml"
    path.write_text('[ingest]\nrejected_file = "rejected.jsonl"\n')
    xdg = {"XDG_STATE_HOME": str(tmp_path / "xdg")}
    systemd = xdg | {"STATE_DIRECTORY": f"{tmp_path / 'lib'}:{tmp_path / 'other'}"}

    def rejected(environ, **kw):
        return load_central_config(path, environ=environ, **kw).ingest.rejected_file

    assert rejected(xdg) == tmp_path / "xdg" / "learnroom" / "rejected.jsonl"
    assert rejected(systemd) == tmp_path / "lib" / "rejected.jsonl"
    assert rejected(systemd, state_dir=tmp_path / "cli") == tmp_path / "cli" / "rejected.jsonl"
    path.write_text('state_dir = "state"\n[ingest]\nrejected_file = "rejected.jsonl"\n')
    assert rejected(systemd) == tmp_path / "state" / "rejected.jsonl"
    path.write_text('[ingest]\nrejected_file = "/var/log/refused.jsonl"\n')
    assert rejected(systemd) == Path("/var/log/refused.jsonl")
