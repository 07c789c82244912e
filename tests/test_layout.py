"""The package tree says where code runs, and the imports keep to it.

Layers, lowest first (README "Where things are"): the contract (``gateway.const``, ``errors``,
``models``, ``topics``, ``clock``, ``config``); the agent (``gateway.agent``) with the room
simulation that stands in for its hardware (``gateway.sim``); the central side's shared
modules (the files directly in ``gateway.central``), then one package per service and the
operator tools; the launchers of real services (``gateway.launch``); and at the top the
command line and the demo. A module may import its own
layer and those below it, never above, and the services never import each other. Imports inside
functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import ROOT

PACKAGE = ROOT / "gateway"
CONTRACT = {
    "gateway",
    "gateway.const",
    "gateway.errors",
    "gateway.models",
    "gateway.topics",
    "gateway.clock",
    "gateway.config",
}
CENTRAL_SHARED = {
    "gateway.central",
    "gateway.central.config",
    "gateway.central.health",
    "gateway.central.hours",
    "gateway.central.mapping",
    "gateway.central.thresholds",
    "gateway.central.validate",
    "gateway.central.writers",
}
SERVICES = ("ingest", "alerts", "display", "tools")
#: A module much longer than this is several concerns; split it (issue: layout by role).
MAX_LINES = 550
#: Packages that only the central side needs (the ``central`` extra); the agent imports none.
CENTRAL_ONLY = (
    "fastapi",
    "uvicorn",
    "jinja2",
    "icalendar",
    "recurring_ical_events",
    "cryptography",
    "prometheus_client",
    "influxdb_client",
)


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Every ``gateway`` module a file imports, at top level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gateway"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("gateway"))
    return found


GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _allowed(name: str) -> set[str] | None:
    """The layers ``name`` may import from (as module-name prefixes); None: anything."""
    if name in CONTRACT:
        return set(CONTRACT)
    if name.startswith(("gateway.agent", "gateway.sim")):
        # one layer: the simulation is the agent's hardware seam, as gpiozero's mock pins are
        return {*CONTRACT, "gateway.agent", "gateway.sim"}
    if name in CENTRAL_SHARED:
        return {*CONTRACT, *CENTRAL_SHARED}
    for service in SERVICES:
        if name.startswith(f"gateway.central.{service}"):
            return {*CONTRACT, *CENTRAL_SHARED, f"gateway.central.{service}"}
    if name.startswith("gateway.launch"):
        return {*CONTRACT, *CENTRAL_SHARED, "gateway.central.tools", "gateway.launch"}
    return None  # the top: gateway.cli, gateway.demo, gateway.__main__


def _within(target: str, prefixes: set[str]) -> bool:
    return any(
        target == p or (p not in CONTRACT | CENTRAL_SHARED and target.startswith(p + "."))
        for p in prefixes
    )


def test_every_module_is_placed_in_a_layer() -> None:
    unplaced = [
        name
        for name in MODULES
        if _allowed(name) is None
        and name not in {"gateway.demo", "gateway.__main__"}
        and not name.startswith("gateway.cli")
    ]
    assert unplaced == [], "new top-level modules belong in a layer (see this file's docstring)"


def test_no_module_imports_a_layer_above_it() -> None:
    wrong = []
    for name, targets in GRAPH.items():
        allowed = _allowed(name)
        if allowed is None:
            continue
        wrong += [f"{name} imports {t}" for t in sorted(targets) if not _within(t, allowed)]
    assert wrong == []


def test_no_import_circles() -> None:
    """Tarjan's strongly connected components over every import, lazy ones included."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH[node]:
            if nxt not in GRAPH:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for name in GRAPH:
        if name not in index:
            visit(name)
    assert circles == []


def test_no_module_is_much_over_500_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in MODULES.values()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


@pytest.mark.parametrize(
    "entry",
    [
        # what `learnroom agent` and `--simulate` load, whatever the room's hardware
        "import gateway.agent.build, gateway.agent.runner, gateway.agent.discovery, "
        "gateway.agent.sources.satellites, gateway.sim.room",
        # and the command line itself, before it dispatches
        "import gateway.cli",
    ],
)
def test_the_agent_loads_nothing_of_the_central_side(entry: str) -> None:
    """A Pi installs only the agent (no ``central`` extra): nothing it runs may need it."""
    code = f"{entry}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    loaded = sorted({m.split(".")[0] for m in out} & set(CENTRAL_ONLY))
    central = sorted(m for m in out if m.startswith(("gateway.central", "gateway.launch")))
    assert (loaded, central) == ([], [])
