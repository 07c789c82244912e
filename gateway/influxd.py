"""InfluxDB 1.x as a child process, for the tests and the demo (Debian's ``influxdb``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from gateway.broker import free_port
from gateway.errors import LearnroomError


class InfluxError(LearnroomError, RuntimeError):
    pass


class Influxd:
    """``influxd`` on a loopback port with its data in ``workdir``."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.rpc_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        binary = shutil.which("influxd")
        if binary is None:
            raise InfluxError("influxd is not installed (apt-get install influxdb)")
        w = self.workdir
        w.mkdir(parents=True, exist_ok=True)
        conf = w / "influxdb.conf"
        conf.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{self.rpc_port}"\n'
            f'[meta]\n  dir = "{w}/meta"\n'
            f'[data]\n  dir = "{w}/data"\n  wal-dir = "{w}/wal"\n  query-log-enabled = false\n'
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            "[monitor]\n  store-enabled = false\n"
        )
        with (w / "influxd.log").open("wb") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own config
                [binary, "-config", str(conf)], stdout=subprocess.DEVNULL, stderr=log
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=1):  # noqa: S310
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    tail = (w / "influxd.log").read_text(errors="replace")[-2000:]
                    raise InfluxError(f"influxd did not start: {tail}") from None
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

    def query(self, q: str, db: str | None = None) -> Any:  # noqa: ANN401 - JSON
        params = {"q": q, "epoch": "ms"} | ({"db": db} if db else {})
        data = urllib.parse.urlencode(params).encode()
        with urllib.request.urlopen(f"{self.url}/query", data=data, timeout=10) as resp:  # noqa: S310
            return json.loads(resp.read())

    def write(self, lines: list[str], db: str) -> None:
        body = "\n".join(lines).encode()
        req = urllib.request.Request(  # noqa: S310 - loopback
            f"{self.url}/write?db={urllib.parse.quote(db)}&precision=ms", data=body, method="POST"
        )
        with urllib.request.urlopen(req, timeout=10):  # noqa: S310
            pass
