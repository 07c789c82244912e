"""Dying loudly (issue 13): however the agent stops, the broker ends up showing it offline.

Each exit path of the real process, against a real Mosquitto:
- a fatal error: the outbox stops being writable with an I/O error that is not "disk full"
  (a file-size limit put on the running process, as ``LimitFSIZE=`` would; SQLite gets EFBIG,
  as it would get EIO from a failing SD card). The agent exits 1 and says offline itself first,
  because its clean DISCONNECT would make the broker drop the Last Will;
- SIGTERM, the clean stop systemd sends: the goodbye through the outbox, exit 0;
- SIGKILL and SIGHUP (no Python code runs): the broker's Last Will.
The seconds from the exit to the retained ``online: false`` are printed (``-s``).
"""

from __future__ import annotations

import resource
import signal
import time

import pytest

from tests.agent.faultkit import top_seq, wait_exit
from tests.agent.test_agent_process import PREFIX, agent_argv, spawn
from tests.mqtt_util import Collector, retained

EXITS = {
    "fatal-io-error": (None, 1),
    "SIGTERM": (signal.SIGTERM, 0),
    "SIGKILL": (signal.SIGKILL, -signal.SIGKILL),
    "SIGHUP": (signal.SIGHUP, -signal.SIGHUP),
}


@pytest.mark.parametrize("path", list(EXITS))
def test_every_exit_leaves_the_room_offline(mosquitto, state_dir, path):
    sig, code = EXITS[path]
    status = f"{PREFIX}/status"
    with Collector(mosquitto.port, f"{PREFIX}/#") as sub:
        proc = spawn(agent_argv(mosquitto, state_dir))
        try:
            sub.wait_for(lambda ms: top_seq(ms) >= 30, 60, "the room reporting")
            if sig is None:
                # every write to a file beyond its first byte fails with EFBIG from now on
                resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (1, 1))
            else:
                proc.send_signal(sig)
            err = wait_exit(proc, 30)
            gone = time.monotonic()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        got = sub.wait_for(
            lambda ms: any(m.topic == status and not m.json["data"]["online"] for m in ms),
            30,
            "online: false",
        )
        said = time.monotonic()
        last = retained(mosquitto.port, status)[status]
    assert proc.returncode == code, err
    assert last.json["data"]["online"] is False, "the retained status says offline"
    assert "Traceback" not in err, err
    if path == "fatal-io-error":
        assert "said offline" in err, err  # by the agent itself, not left to the Will
        assert "cannot write the outbox" in err, err
    offline = [m for m in got if m.topic == status and not m.json["data"]["online"]]
    print(
        f"\nexit {path}: exit code {proc.returncode}, offline "
        f"{'with' if 'seq' in offline[0].json else 'without'} seq, "
        f"{max(0.0, said - gone):.2f} s after the process ended"
    )
