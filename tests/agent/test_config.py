"""Bad config files get clear errors naming file and field; good ones load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.agent.config import load_room_config
from gateway.config import parse_mqtt_url
from gateway.errors import ConfigError
from tests.paths import ROOT

EXAMPLE = ROOT / "deploy" / "pi" / "room.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "room.toml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_room_config(path, environ={})
    return info.value.problems


def test_shipped_example_is_valid():
    config = load_room_config(EXAMPLE, environ={"LEARNROOM_SITE_SECRET": "s" * 32})
    assert config.room.site == "stadtbuecherei-mitte"
    assert len(config.lockers.banks[0].slots) == 2


def test_every_problem_is_reported_with_file_and_field(tmp_path: Path):
    path = write(
        tmp_path,
        """
[room]
site = "Stadtbücherei Mitte"
room = "lernraum-1"
capcity = 20

[mqtt]
port = 70000
protocol = "4"
""",
    )
    found = problems(path)
    text = "\n".join(found)
    assert len(found) == 4, text
    assert f"{path}: room.site:" in text and "lower-case letters" in text
    assert f"{path}: room.capcity: unknown key" in text and "spelling" in text
    assert f"{path}: mqtt.port:" in text and "70000" in text
    assert f"{path}: mqtt.protocol:" in text


def test_cross_field_problems_say_how_to_fix(tmp_path: Path):
    path = write(
        tmp_path,
        """
[room]
site = "s"
room = "r"
[occupancy]
pir_pins = [17]
seat_pins = [18, 17]
""",
    )
    (line,) = problems(path)
    assert "pin 17 is used twice" in line and "occupancy.pir_pins[0]" in line
    assert "occupancy.seat_pins[1]" in line


def test_badge_reader_needs_site_secret(tmp_path: Path):
    text = """
[room]
site = "s"
room = "r"
[lockers.badge]
device = "stdin"
"""
    (line,) = problems(write(tmp_path, text))
    assert "site_secret" in line and "LEARNROOM_SITE_SECRET" in line
    config = load_room_config(write(tmp_path, text), environ={"LEARNROOM_SITE_SECRET": "k" * 20})
    assert config.privacy.site_secret == "k" * 20, "the secret may come from the environment"


def test_broken_toml_names_line(tmp_path: Path):
    (line,) = problems(write(tmp_path, "[room\nsite = 1\n"))
    assert str(tmp_path / "room.toml") in line and "line 1" in line


def test_missing_file(tmp_path: Path):
    (line,) = problems(tmp_path / "nope.toml")
    assert "file not found" in line


def test_unknown_timezone_and_hours(tmp_path: Path):
    text = '[room]\nsite="s"\nroom="r"\ntimezone="Europe/Berlinn"\n'
    (line,) = problems(write(tmp_path, text))
    assert "room.timezone" in line and "Europe/Berlin" in line
    text = '[room]\nsite="s"\nroom="r"\nopens=20:00:00\ncloses=08:00:00\n'
    (line,) = problems(write(tmp_path, text))
    assert "opens must be before closes" in line


def test_relative_outbox_path_is_relative_to_the_file(tmp_path: Path):
    path = write(tmp_path, '[room]\nsite="s"\nroom="r"\n[outbox]\npath="data/o.sqlite"\n')
    assert load_room_config(path, environ={}).outbox.path == tmp_path / "data" / "o.sqlite"


def test_mqtt_url():
    s = parse_mqtt_url("mqtts://gw%40site:p%3Ass@broker.example:8884")
    assert (s.host, s.port, s.tls, s.username, s.password) == (
        "broker.example",
        8884,
        True,
        "gw@site",
        "p:ss",
    )
    assert parse_mqtt_url("mqtts://b").effective_port == 8883
    assert parse_mqtt_url("mqtt://b").effective_port == 1883
    with pytest.raises(ConfigError, match="expected mqtt://"):
        parse_mqtt_url("http://b")


def test_check_config_command(tmp_path: Path):
    bad = write(tmp_path, '[room]\nsite="s"\nroom="r"\ncapacity=-1\n')
    run = subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", str(bad)], capture_output=True, text=True
    )
    assert run.returncode == 1
    assert f"{bad}: room.capacity:" in run.stderr and "1 problem(s)" in run.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", str(EXAMPLE)],
        capture_output=True,
        text=True,
        env={"LEARNROOM_SITE_SECRET": "s" * 32, "PATH": "/usr/bin"},
    )
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout


def test_satellites_and_own_sensors_of_one_kind_are_refused(tmp_path: Path):
    path = tmp_path / "room.toml"
    path.write_text(
        '[room]\nsite = "s"\nroom = "r"\n[[environment.sensors]]\ntype = "scd4x"\n[satellites]\n'
    )
    with pytest.raises(ConfigError) as err:
        load_room_config(path, environ={})
    assert "two alternating environment streams" in str(err.value)
    path.write_text(path.read_text() + 'readings = ["lockers", "occupancy"]\n')
    config = load_room_config(path, environ={})
    assert config.satellites is not None
