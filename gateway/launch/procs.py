"""Real services as child processes (tests, demo, benchmarks): one way to start them on a
loopback port with their files in a work directory, wait until they answer, and stop them."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

from gateway.errors import LearnroomError
from gateway.launch.broker import free_port


class ServiceError(LearnroomError, RuntimeError):
    """A service is not installed or did not come up; the message has its log's end."""


class HttpService:
    """A server that says it is ready on an HTTP path. Subclasses name the binary (and the
    Debian package that has it), the path, and how to run it."""

    binaries: tuple[str, ...] = ()
    package = ""
    ready_path = "/"
    error: type[ServiceError] = ServiceError

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.binaries[0]}.log"

    def log_tail(self, chars: int = 2000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    def command(self, binary: str) -> list[str]:
        raise NotImplementedError

    def binary(self) -> str | None:
        return next(filter(None, (shutil.which(b) for b in self.binaries)), None)

    def start(self, timeout: float = 30.0) -> None:
        binary = self.binary()
        if binary is None:
            raise self.error(
                f"{self.binaries[0]} is not installed (apt-get install {self.package})"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = self.command(binary)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log)  # noqa: S603 - our args
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}{self.ready_path}", timeout=1):  # noqa: S310
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise self.error(
                        f"{self.binaries[0]} did not start on port {self.port}: {self.log_tail()}"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
