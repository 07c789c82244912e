"""Prometheus Alertmanager as a child process, for the tests and the demo (Debian's
``prometheus-alertmanager``): a loopback port, its own data dir, clustering off."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path
from typing import Any

from gateway.launch.procs import HttpService, ServiceError


class AlertmanagerProcessError(ServiceError):
    pass


def alertmanager_path() -> str | None:
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


class Alertmanager(HttpService):
    binaries = ("prometheus-alertmanager", "alertmanager")
    package = "prometheus-alertmanager"
    ready_path = "/-/ready"
    error = AlertmanagerProcessError

    def __init__(self, workdir: Path, config_yaml: str, port: int | None = None) -> None:
        super().__init__(workdir, port)
        self.config_yaml = config_yaml

    def command(self, binary: str) -> list[str]:
        conf = self.workdir / "alertmanager.yml"
        conf.write_text(self.config_yaml)
        return [
            binary,
            f"--config.file={conf}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",  # one instance: no gossip port
            "--log.level=warn",
        ]

    def alerts(self) -> Any:  # noqa: ANN401 - JSON
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as resp:  # noqa: S310
            return json.loads(resp.read())
