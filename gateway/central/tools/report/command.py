"""``learnroom report``'s command: arguments checked, the report made, one line printed.

Kept here rather than in ``gateway.cli`` so that the command line module stays a table of
commands; importing this module imports matplotlib, so a missing central extra is named
before any argument is looked at.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from gateway.central.config import CentralConfig
from gateway.central.tools.report import (
    make_report,
    render,  # noqa: F401 - matplotlib: the extra is there
)

__all__ = ["run"]


def run(
    args: argparse.Namespace, load: Callable[[argparse.Namespace], CentralConfig]
) -> tuple[int, str]:
    """The exit code and the line to print; ``load`` is the CLI's central config with its
    ``--influx`` override."""
    missing = [f"--{n}" for n in ("site", "week", "out") if not getattr(args, n)]
    if missing:
        return 2, f"learnroom report: {', '.join(missing)} required"
    weeks = make_report(
        load(args), args.site, args.week, args.out, lang=args.lang, timezone=args.tz
    )
    rooms = sum(len(w.rooms) for w in weeks)
    return 0, f"{args.out}: {len(weeks)} site(s), {rooms} room(s), week {args.week}"
