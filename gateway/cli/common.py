"""What every sub-command shares: the log level flag, logging, and a clean stop on signals."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal

__all__ = ["_add_common", "_install_stop", "_setup_logging"]


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log-level",
        default=os.environ.get("LEARNROOM_LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging threshold (default INFO, or $LEARNROOM_LOG_LEVEL)",
    )


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _install_stop(stop: object) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)  # type: ignore[arg-type]
