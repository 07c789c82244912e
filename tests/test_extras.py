"""A Pi installs only the agent; every command of another role says which extra it needs.

The packages of an extra are hidden from a real ``learnroom`` process by an import hook, as if
that extra had not been installed: the same process a user runs, without the packages.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions

import pytest

from gateway.cli import COMMAND_EXTRA, EXTRA_MODULES
from gateway.launch.broker import Mosquitto
from tests.mqtt_util import Collector
from tests.paths import ROOT

#: Runs ``learnroom`` with the packages named in $HIDE missing.
WITHOUT = """
import os, sys
from importlib.abc import MetaPathFinder
hidden = set(os.environ["HIDE"].split())
class Hide(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in hidden:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Hide())
from gateway.cli import main
sys.exit(main(sys.argv[1:]))
"""

ARGS = {"provision": ["--site", "s", "--room", "r"]}


def learnroom_without(hidden: frozenset[str] | set[str], *args: str, timeout: float = 60):
    return subprocess.Popen(
        [sys.executable, "-c", WITHOUT, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT), "HIDE": " ".join(sorted(hidden))},
    )


@pytest.mark.parametrize("command", sorted(COMMAND_EXTRA))
def test_a_command_without_its_extra_says_which_to_install(command: str, tmp_path):
    extra = COMMAND_EXTRA[command]
    proc = learnroom_without(EXTRA_MODULES[extra], command, *ARGS.get(command, []))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert f"pip install 'learnroom[{extra}]'" in err
    assert "Traceback" not in err


def test_the_agent_runs_with_nothing_of_the_central_side(mosquitto: Mosquitto, tmp_path):
    """``learnroom agent --simulate`` reports with every central and demo package missing."""
    hidden = EXTRA_MODULES["central"] | EXTRA_MODULES["demo"]
    with Collector(mosquitto.port, "learnroom/v1/pi-site/pi-room/#") as seen:
        proc = learnroom_without(
            hidden,
            "agent",
            "--simulate",
            "--site",
            "pi-site",
            "--room",
            "pi-room",
            "--mqtt",
            mosquitto.url,
            "--state-dir",
            str(tmp_path),
        )
        try:
            seen.wait_for(
                lambda msgs: {"status", "occupancy"} <= {m.topic.split("/")[4] for m in msgs},
                30,
                "the room's status and occupancy",
            )
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_the_extras_name_the_modules_the_cli_checks():
    """pyproject.toml's extras and the CLI's table agree (every dependency is installed here)."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    dists = packages_distributions()

    def norm(name: str) -> str:
        return name.lower().replace("_", "-")

    for extra, modules in EXTRA_MODULES.items():
        wanted = {
            norm(req.split(";")[0].split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip())
            for req in extras[extra]
            if not req.startswith("learnroom")
        }
        provided = {norm(d) for m in modules for d in dists.get(m, [])}
        assert wanted <= provided, (
            f"[{extra}] has packages the CLI does not know: {wanted - provided}"
        )
