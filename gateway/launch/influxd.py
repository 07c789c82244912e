"""InfluxDB 1.x as a child process, for the tests and the demo (Debian's ``influxdb``)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from gateway.launch.broker import free_port
from gateway.launch.procs import HttpService, ServiceError


class InfluxError(ServiceError):
    pass


class Influxd(HttpService):
    """``influxd`` on a loopback port with its data in ``workdir``."""

    binaries = ("influxd",)
    package = "influxdb"
    ready_path = "/ping"
    error = InfluxError

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(workdir, port)
        self.rpc_port = free_port()

    def command(self, binary: str) -> list[str]:
        w = self.workdir
        conf = w / "influxdb.conf"
        conf.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{self.rpc_port}"\n'
            f'[meta]\n  dir = "{w}/meta"\n'
            f'[data]\n  dir = "{w}/data"\n  wal-dir = "{w}/wal"\n  query-log-enabled = false\n'
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            "[monitor]\n  store-enabled = false\n"
        )
        return [binary, "-config", str(conf)]

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

    def rows(self, q: str, db: str | None = None) -> list[dict[str, Any]]:
        """The first statement's rows (``setup.result_rows``); its error raises."""
        from gateway.central.tools.influx_setup import result_rows  # noqa: PLC0415 - tests and demo only

        result = self.query(q, db)["results"][0]
        if "error" in result:
            raise InfluxError(f"{q!r}: {result['error']}")
        return result_rows(result)
