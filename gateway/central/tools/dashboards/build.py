"""The four dashboards as files: what ``python -m gateway.central.tools.dashboards OUT_DIR``
writes, in a stable form so that the committed JSON can be held equal to the generator's."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.central.tools.dashboards.dashboard import Dashboard
from gateway.central.tools.dashboards.display import display_dashboard
from gateway.central.tools.dashboards.it import it_dashboard
from gateway.central.tools.dashboards.room import room_dashboard
from gateway.central.tools.dashboards.rooms import rooms_dashboard


def dashboards() -> list[Dashboard]:
    return [rooms_dashboard(), room_dashboard(), it_dashboard(), display_dashboard()]


def file_name(dashboard: Dashboard) -> str:
    return f"{dashboard.uid}.json"


def render(dashboard: Dashboard) -> str:
    """The file's text: stable key order as built, two-space indent, final newline."""
    return json.dumps(dashboard.json(), indent=2, ensure_ascii=False) + "\n"


def write_all(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for dashboard in dashboards():
        path = out_dir / file_name(dashboard)
        path.write_text(render(dashboard), encoding="utf-8")
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -m gateway.central.tools.dashboards OUT_DIR\n")
        return 2
    for path in write_all(Path(args[0])):
        sys.stdout.write(f"{path}\n")
    return 0
