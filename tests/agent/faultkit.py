"""Shared pieces of the agent's fault suite: the real process, a timed subscriber, a small disk."""

from __future__ import annotations

import contextlib
import errno
import itertools
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from tests.agent.test_agent_process import PREFIX
from tests.agent.test_faults import by_seq
from tests.mqtt_util import Collector, Received


class TimedCollector(Collector):
    """A Collector that also notes when each message arrived (for seconds of silence)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrived: list[float] = []

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.arrived.append(time.monotonic())
        super()._on_message(client, userdata, msg)

    def __enter__(self) -> TimedCollector:
        super().__enter__()
        return self

    def longest_silence(self, since: float, until: float) -> float:
        """The longest gap between readings in ``[since, until]`` (monotonic seconds)."""
        with self._cond:
            times = [since, *(t for t in self.arrived if since <= t <= until), until]
        return max(b - a for a, b in itertools.pairwise(times))


def top_seq(messages: list[Received]) -> int:
    return max(by_seq(messages), default=-1)


def reached(seq: int) -> Callable[[list[Received]], bool]:
    """A ``wait_for`` predicate: a reading with ``seq`` or above has arrived."""
    return lambda ms: top_seq(ms) >= seq


def live_faults(messages: list[Received], above: int) -> list[list[str]]:
    """``health.faults`` of the health readings with a seq above ``above``."""
    out = []
    for m in messages:
        if m.topic == f"{PREFIX}/health" and m.payload and m.json.get("seq", -1) > above:
            out.append(m.json["data"]["faults"])
    return out


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A small RAM disk over ``folder`` (root only); always unmounted, even on failure."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, name: str = "filler") -> Path:
    """Write a file until the disk is full; returns it (delete it to free the space)."""
    path = folder / name
    chunk = b"\0" * 65536
    with path.open("wb", buffering=0) as f:
        for size in (65536, 4096, 512):
            while True:
                try:
                    f.write(chunk[:size])
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return path


def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> str:
    _, err = proc.communicate(timeout=timeout)
    return err.decode(errors="replace")
