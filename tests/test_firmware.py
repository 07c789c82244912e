"""The ESPHome satellite configurations in firmware_configs/.

`scripts/esphome-check` validates every board file with `esphome config` (ESPHome in its own
virtualenv, installed by the script) and lists the MQTT topics each node publishes; these tests
fail, never skip, when ESPHome is missing or a file is invalid. The README's topic table is the
contract with the gateway's satellites source, so it is compared with what the configs produce.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.paths import ROOT

FIRMWARE = ROOT / "firmware_configs"
CHECK = ROOT / "scripts" / "esphome-check"
README = FIRMWARE / "README.md"
SECRETS_EXAMPLE = FIRMWARE / "secrets.example.yaml"

BOARD_FILES = sorted(
    path.name for path in FIRMWARE.glob("*.yaml") if not path.name.startswith("secrets")
)
ALL_YAML = sorted(path for path in FIRMWARE.rglob("*.yaml") if not path.name.startswith("secrets"))

# `key: value` lines whose value must come from secrets.yaml
SECRET_KEYS = re.compile(
    r"^\s*-?\s*(?P<key>\w*(?:password|ssid|username|broker|api_key|encryption_key|psk)\w*)"
    r"\s*:\s*(?P<value>.*?)\s*$",
    re.MULTILINE,
)
# Not secrets: the fallback access point is named after the node.
NOT_SECRET = {("common/network.yaml", "ssid", "${node_name}")}
INCLUDE = re.compile(r"!include\s+(?:\{\s*file:\s*)?(?P<path>[\w./-]+\.yaml)")
TOPIC = re.compile(r"`((?:learnroom-sat|homeassistant)/[^`\s]+/(?:state|config|command))`")


@dataclass(frozen=True)
class CheckResult:
    returncode: int
    stderr: str
    nodes: dict[str, Any]


@pytest.fixture(scope="module")
def check() -> CheckResult:
    """One run of scripts/esphome-check --topics for the whole module (about 6 s)."""
    proc = subprocess.run(
        [str(CHECK), "--topics"], capture_output=True, text=True, timeout=280, cwd=ROOT
    )
    if proc.returncode == 2:
        pytest.fail(f"scripts/esphome-check could not install ESPHome:\n{proc.stderr}")
    # the topics of the valid files, also when another file is invalid
    nodes = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return CheckResult(proc.returncode, proc.stderr, nodes)


def _nodes_by_file(check: CheckResult) -> dict[str, dict[str, Any]]:
    return {node["file"]: node for node in check.nodes.values()}


def _secret_names() -> set[str]:
    return set(re.findall(r"^(\w+)\s*:", SECRETS_EXAMPLE.read_text(encoding="utf-8"), re.M))


def test_there_are_board_files() -> None:
    assert {"environment-node.yaml", "locker-node.yaml", "door-counter-node.yaml"} <= set(
        BOARD_FILES
    )


def test_esphome_check_passes(check: CheckResult) -> None:
    assert check.returncode == 0, f"esphome config failed:\n{check.stderr}"


@pytest.mark.parametrize("board_file", BOARD_FILES)
def test_board_file_is_valid(check: CheckResult, board_file: str) -> None:
    assert re.search(rf"^ok\s+{re.escape(board_file)} ", check.stderr, re.M), check.stderr
    assert board_file in _nodes_by_file(check)


def _includes(path: Path) -> set[Path]:
    text = path.read_text(encoding="utf-8")
    return {(path.parent / m["path"]).resolve() for m in INCLUDE.finditer(text)}


def _includes_common(path: Path, seen: frozenset[Path] = frozenset()) -> bool:
    common = (FIRMWARE / "common" / "node.yaml").resolve()
    included = _includes(path)
    return common in included or any(
        _includes_common(p, seen | {path}) for p in included - seen if p.parent == FIRMWARE
    )


@pytest.mark.parametrize("board_file", BOARD_FILES)
def test_board_file_includes_the_common_package(check: CheckResult, board_file: str) -> None:
    assert _includes_common(FIRMWARE / board_file), (
        f"{board_file} must include common/node.yaml under packages: (directly or through "
        "the board file it is a variant of)"
    )
    node = _nodes_by_file(check)[board_file]
    # what common/ gives every node
    assert node["topic_prefix"] == f"learnroom-sat/{node['node']}"
    assert node["status_topic"] == f"learnroom-sat/{node['node']}/status"
    assert node["role"] in {"environment-node", "locker-node", "door-counter-node"}
    object_ids = {e["object_id"] for e in node["entities"]}
    assert {"uptime", "wifi_signal"} <= object_ids


def test_node_names_are_unique(check: CheckResult) -> None:
    assert len(check.nodes) == len(BOARD_FILES)


@pytest.mark.parametrize("path", ALL_YAML, ids=lambda p: str(p.relative_to(FIRMWARE)))
def test_no_secret_is_hard_coded(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for match in SECRET_KEYS.finditer(text):
        value = match["value"]
        if value.startswith("#") or value == "":
            continue  # a comment, or a mapping that follows on the next lines
        if (str(path.relative_to(FIRMWARE)), match["key"], value) in NOT_SECRET:
            continue
        assert value.startswith("!secret "), (
            f"{path.relative_to(ROOT)}: {match['key']} must come from secrets.yaml "
            f"(`{match['key']}: !secret {match['key']}`), not be written in the file"
        )
        assert value.removeprefix("!secret ").strip() in _secret_names(), (
            f"{path.relative_to(ROOT)}: {value} is not in secrets.example.yaml"
        )
    example_passwords = re.findall(
        r"^\w*password\w*\s*:\s*\"([^\"]+)\"", SECRETS_EXAMPLE.read_text(encoding="utf-8"), re.M
    )
    assert example_passwords
    for value in example_passwords:
        assert value not in text, f"{path.relative_to(ROOT)} contains the secret value {value!r}"


def test_no_native_api() -> None:
    """MQTT only: an `api:` block without a Home Assistant client reboots the node."""
    for path in ALL_YAML:
        assert not re.search(r"^api\s*:", path.read_text(encoding="utf-8"), re.M), path


def test_real_secrets_are_git_ignored() -> None:
    proc = subprocess.run(
        ["git", "check-ignore", "-q", "firmware_configs/secrets.yaml"],
        cwd=ROOT,
        capture_output=True,
    )
    assert proc.returncode == 0, "add `firmware_configs/secrets.yaml` to .gitignore"


def _generic(topic: str, node: str) -> str:
    return topic.replace(f"/{node}/", "/<node>/")


def test_readme_documents_every_topic(check: CheckResult) -> None:
    documented = set(TOPIC.findall(README.read_text(encoding="utf-8")))
    produced: set[str] = set()
    for node in check.nodes.values():
        for entity in node["entities"]:
            for key in ("state_topic", "discovery_topic", "command_topic"):
                if entity[key] is not None:
                    produced.add(_generic(entity[key], node["node"]))
    generic_documented = {t for t in documented if "/<node>/" in t and "<object_id>" not in t}
    assert produced - generic_documented == set(), "topics missing from the README table"
    assert generic_documented - produced == set(), "README names topics no node publishes"


def test_readme_rows_name_the_right_board_files(check: CheckResult) -> None:
    """Each table row says which board files publish its state topic."""
    rows = re.findall(
        r"^\| (?P<files>[\w, -]+) \| `(?P<topic>learnroom-sat/<node>/[^`]+/state)` \|",
        README.read_text(encoding="utf-8"),
        re.M,
    )
    assert rows
    for files, topic in rows:
        publishers = {
            node["file"].removesuffix(".yaml")
            for node in check.nodes.values()
            if any(_generic(e["state_topic"], node["node"]) == topic for e in node["entities"])
        }
        expected = {f.removesuffix(".yaml") for f in BOARD_FILES} if files == "all" else None
        assert publishers == (expected or {f.strip() for f in files.split(",")}), topic
