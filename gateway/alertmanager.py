"""Prometheus Alertmanager as a child process, for the tests and the demo (Debian's
``prometheus-alertmanager``): a loopback port, its own data dir, clustering off."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from gateway.broker import free_port
from gateway.errors import LearnroomError


class AlertmanagerProcessError(LearnroomError, RuntimeError):
    pass


def alertmanager_path() -> str | None:
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


class Alertmanager:
    def __init__(self, workdir: Path, config_yaml: str, port: int | None = None) -> None:
        self.workdir = workdir
        self.config_yaml = config_yaml
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        binary = alertmanager_path()
        if binary is None:
            raise AlertmanagerProcessError(
                "alertmanager is not installed (apt-get install prometheus-alertmanager)"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "alertmanager.yml"
        conf.write_text(self.config_yaml)
        log = self.workdir / "alertmanager.log"
        with log.open("ab") as fh:
            self.proc = subprocess.Popen(  # noqa: S603 - our own config
                [
                    binary,
                    f"--config.file={conf}",
                    f"--storage.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--cluster.listen-address=",
                    "--log.level=warn",
                ],
                stdout=fh,
                stderr=fh,
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1):  # noqa: S310
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    tail = log.read_text(errors="replace")[-2000:]
                    raise AlertmanagerProcessError(f"alertmanager did not start: {tail}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def alerts(self) -> Any:  # noqa: ANN401 - JSON
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as resp:  # noqa: S310
            return json.loads(resp.read())
