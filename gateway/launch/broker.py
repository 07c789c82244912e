"""Brokers for the demo and the tests: Mosquitto as a child process, or amqtt in process.

Mosquitto is preferred whenever it is on PATH: it is what rooms use in production, and amqtt
0.12 mishandles retained messages for new subscribers and ignores ``$share``.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from gateway.errors import LearnroomError

_LOGGER = logging.getLogger(__name__)

#: Mosquitto's default (1000 messages per client) silently drops for a slow subscriber.
QUEUE_LIMITS = "max_queued_messages 1000000\nmax_queued_bytes 0\nmax_inflight_messages 100\n"


class BrokerError(LearnroomError, RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto",) if Path(p).exists()), None
    )


class Mosquitto:
    """A Mosquitto process on a loopback port with its own config, data dir and log."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        extra: str = "",
        allow_anonymous: bool = True,
    ) -> None:
        self.workdir = workdir
        self.host = host
        self.port = port or free_port(host)
        self.extra = extra
        self.allow_anonymous = allow_anonymous
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            f"listener {self.port} {self.host}\n"
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            "autosave_interval 1\n"
            f"log_dest file {self.log}\n"
            # as root, Mosquitto drops to user "mosquitto", which cannot write our temp dir
            + (f"user {getpass.getuser()}\n" if os.geteuid() == 0 else "")
            + "log_type error\nlog_type warning\nlog_type notice\n"
            + QUEUE_LIMITS
            + self.extra
        )

    def start(self, timeout: float = 10.0) -> None:
        binary = mosquitto_path()
        if binary is None:
            raise BrokerError("mosquitto is not installed (apt-get install mosquitto)")
        self.write_config()
        self.proc = subprocess.Popen(  # noqa: S603 - our own config file
            [binary, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while not port_open(self.host, self.port):
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                log = self.log.read_text() if self.log.exists() else ""
                raise BrokerError(f"mosquitto exited: {err}{log}")
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"mosquitto did not listen on {self.host}:{self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None

    @contextlib.contextmanager
    def running(self) -> Iterator[Mosquitto]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


@contextlib.asynccontextmanager
async def embedded_amqtt(host: str, port: int) -> AsyncIterator[str]:
    """amqtt in this process (MQTT 3.1.1), for machines without Mosquitto."""
    try:
        from amqtt.broker import Broker  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        raise BrokerError(
            "no broker: install mosquitto, or pip install 'learnroom[demo]' for amqtt"
        ) from exc
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    try:
        yield f"mqtt://{host}:{port}"
    finally:
        await broker.shutdown()
        await asyncio.sleep(0)
