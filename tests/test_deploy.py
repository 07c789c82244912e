"""What can be checked of the deployment without a Docker engine or a Raspberry Pi."""

from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.central.config import load_central_config
from gateway.central.tools.provision import Provisioner
from gateway.launch.broker import free_port, mosquitto_path, port_open
from tests.central.util import wait_for
from tests.paths import ROOT

CENTRAL = ROOT / "deploy" / "central"
PI = ROOT / "deploy" / "pi"
SCRIPTS = [
    PI / "install.sh",
    PI / "update.sh",
    CENTRAL / "influxdb-init" / "10-learnroom.sh",
    ROOT / "scripts" / "test",
    ROOT / "scripts" / "demo",
    ROOT / "scripts" / "apt-deps.sh",
    ROOT / "scripts" / "env.sh",
    ROOT / "scripts" / "esphome-check",
]


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `learnroom provision` makes: compose mounts it as ./provision."""
    out = tmp_path_factory.mktemp("deploy") / "provision"
    Provisioner(out, broker_host="127.0.0.1", server_names=["127.0.0.1"]).add("s", "r")
    return out


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CENTRAL / "compose.yaml").read_text())
    return data


def test_compose_parses_and_names_files_that_exist(provisioned: Path):
    services = compose()["services"]
    expected = {"mosquitto", "influxdb", "grafana", "alertmanager", "ingest", "alerts", "display"}
    assert expected <= set(services)
    missing = []
    for name, svc in services.items():
        sources = [v.split(":")[0] for v in svc.get("volumes", []) if v.startswith(".")]
        sources += list(svc.get("env_file", []))
        for src in sources:
            if src.startswith("./provision/"):
                path = provisioned / src.removeprefix("./provision/")
            elif src == ".env":
                path = CENTRAL / ".env.example"  # the user copies it
            else:
                path = (CENTRAL / src).resolve()
            if not path.exists():
                missing.append(f"{name}: {src}")
        build = svc.get("build")
        if build:
            context = (CENTRAL / build["context"]).resolve()
            assert (context / build["dockerfile"]).exists(), f"{name}: Dockerfile"
    assert not missing, f"compose.yaml mounts what does not exist: {missing}"
    # the broker keeps sessions and queued messages across restarts
    assert "mosquitto-data:/mosquitto/data" in services["mosquitto"]["volumes"]


def test_the_compose_central_config_is_valid():
    config = load_central_config(
        CENTRAL / "central.compose.toml", environ={"LEARNROOM_INFLUX_TOKEN": "t"}
    )
    assert config.influx is not None
    assert (config.influx.version, config.mqtt.host) == (2, "mosquitto")
    assert config.display.host == "0.0.0.0"


def test_the_dockerfile_steps_are_the_readme_steps():
    runs = [
        line.removeprefix("RUN ").strip()
        for line in (CENTRAL / "Dockerfile").read_text().splitlines()
        if line.startswith("RUN ")
    ]
    readme = (CENTRAL / "README.md").read_text()
    block = readme.split("## Install without Docker", 1)[1].split("```sh", 1)[1].split("```")[0]
    steps = [line.strip() for line in block.splitlines() if line.strip()]
    assert runs, "the Dockerfile has RUN steps"
    assert [s for s in steps if s in runs] == runs, f"README steps {steps} vs Dockerfile {runs}"


def test_the_shipped_mosquitto_conf_runs_with_provisioned_files(provisioned: Path, tmp_path: Path):
    binary = mosquitto_path()
    if binary is None:
        pytest.fail("mosquitto is required; run scripts/test")
    inner, tls = free_port(), free_port()
    text = (CENTRAL / "mosquitto.conf").read_text()
    text = text.replace("/mosquitto/auth/", f"{provisioned}/mosquitto/")
    text = text.replace("/mosquitto/certs/", f"{provisioned}/ca/")
    text = text.replace("/mosquitto/data/", f"{tmp_path}/")
    text = re.sub(r"^listener 1883$", f"listener {inner} 127.0.0.1", text, flags=re.M)
    text = re.sub(r"^listener 8883$", f"listener {tls} 127.0.0.1", text, flags=re.M)
    if os.geteuid() == 0:
        text += f"user {getpass.getuser()}\n"
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text)
    log = tmp_path / "mosquitto.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=fh, stderr=fh)
    try:
        wait_for(
            lambda: (
                (port_open("127.0.0.1", inner) and port_open("127.0.0.1", tls))
                or bool(proc.poll() is not None)
            ),
            10,
            "both listeners are up",
        )
        assert proc.poll() is None, log.read_text()
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_pass_shellcheck(script: Path):
    tool = shutil.which("shellcheck")
    if tool is None:
        pytest.fail("shellcheck is required; run scripts/test (Debian package shellcheck)")
    done = subprocess.run(
        [tool, "-x", str(script)], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout


def test_pi_files_the_install_script_names_exist():
    text = (PI / "install.sh").read_text()
    for name in re.findall(r'"\$here/([\w.-]+)"', text):
        assert (PI / name).exists(), name


@pytest.mark.parametrize("service", ["ingest", "alerts", "display"])
def test_each_central_unit_runs_its_command_and_restarts_on_failure(service: str):
    """The services exit 1 when a loop dies or hangs: the unit must start them again, and
    its command line must be one the CLI takes."""
    from gateway.cli import build_parser

    unit = (CENTRAL / f"learnroom-{service}.service").read_text()
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and line[0] != "#"
    )
    assert settings["Restart"] == "on-failure"
    assert settings["StateDirectory"] == "learnroom"
    argv = settings["ExecStart"].split()
    assert argv[0].endswith("/learnroom")
    args = build_parser().parse_args(argv[1:])
    assert args.command == service
    assert args.config == Path("/etc/learnroom/central.toml")
