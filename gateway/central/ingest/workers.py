"""``learnroom ingest --workers N``: N ingest processes on one share group, one ``/metrics``,
one ``/healthz``, one command for systemd.

Why processes: one ingest spends its time in Python under one GIL (paho's receive loop, then
validating and mapping each message), so it uses one core; the broker's share group deals the
messages out to several processes, each on its own core (DESIGN.md "Scale").

- Worker ``i`` runs the ordinary ``Ingest`` in a child process with the client id
  ``<client_id>`` for worker 0 and ``<client_id>-<i>`` beyond: stable across restarts, so the
  broker resumes each session, and one process upgraded to several resumes the session that
  holds what arrived while it was down.
- Loss accounting needs all of a gateway's seqs in one place, and the broker deals a gateway's
  messages to any worker: workers send their seqs to the parent (a few hundred a pipe message),
  which keeps the one ``SeqTracker``, exactly as one process would.
- The parent serves ``/metrics`` and ``/healthz`` on the configured port. It asks each
  worker's own endpoint (a loopback port of the worker's choosing) when it is asked, and merges
  (``metrics.merge``). Chosen over prometheus_client's multiprocess mode, which takes no custom
  collectors (ours reads plain counters only when scraped, keeping the hot path free of
  metric locks) and leaves mmap files in a shared directory to be cleaned at every start.
- Supervision: a worker that ends by itself (a dead or stuck loop, a crash, SIGKILL) makes the
  parent stop the others cleanly and exit 1, so systemd restarts the whole and the broker sends
  again what was not acknowledged. Workers die with the parent (``PR_SET_PDEATHSIG``), so a
  SIGKILLed parent leaves no worker holding a session.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from gateway.central.config import CentralConfig
from gateway.central.ingest.health import LoopHealth, serve
from gateway.central.ingest.metrics import merge, seq_families
from gateway.central.ingest.seqs import SeqTracker
from gateway.central.ingest.service import Ingest
from gateway.central.writers import writer_from_config
from gateway.errors import ConfigError

_LOGGER = logging.getLogger(__name__)

#: States of a loop that say nothing beyond "working": another worker's state is more telling.
_QUIET = frozenset({"idle", "connected"})
_PR_SET_PDEATHSIG = 1


def run_ingest(config: CentralConfig, workers: int, stop: threading.Event) -> int:
    """``learnroom ingest``: one ``Ingest`` in this process, or ``workers`` under a parent."""
    if workers < 1:
        raise ConfigError([f"--workers must be 1 or more, got {workers}"])
    assert config.influx is not None  # noqa: S101 - the command checked it
    if workers == 1:
        return Ingest(config, writer_from_config(config.influx)).run(stop)
    return Supervisor(config, workers).run(stop)


def client_id(base: str, index: int) -> str:
    """Worker 0 keeps the configured id (the session of a single process); the others
    ``<id>-<i>``."""
    return base if index == 0 else f"{base}-{index}"


def worker_config(config: CentralConfig, index: int) -> CentralConfig:
    """The worker's own client id; its metrics are served by the worker itself on a loopback
    port of its choosing, so the configured port stays the parent's."""
    ingest = config.ingest.model_copy(
        update={"client_id": client_id(config.ingest.client_id, index), "metrics_port": 0}
    )
    return config.model_copy(update={"ingest": ingest})


class Supervisor:
    """The parent: starts the workers, keeps the seq tracker, serves the merged endpoints."""

    def __init__(
        self, config: CentralConfig, workers: int, *, stop_timeout_s: float = 45.0
    ) -> None:
        self.config = config
        self.workers = workers
        self.stop_timeout_s = stop_timeout_s
        self.seqs = SeqTracker()
        self._seqs_lock = threading.Lock()
        self._procs: list[BaseProcess] = []
        self._ports: dict[int, int] = {}
        #: workers whose writer holds a batch InfluxDB did not take
        self._writers_down: set[int] = set()
        self.registry = CollectorRegistry()
        self.registry.register(_Merged(self))

    def run(self, stop: threading.Event, check_s: float = 0.5) -> int:
        """Serve until ``stop`` is set (0) or a worker ends by itself (1)."""
        ing = self.config.ingest  # the port first: taken, nothing is started
        server = None
        if ing.metrics_port:
            server = serve(
                ing.metrics_host,
                ing.metrics_port,
                self.registry,
                self.health,
                name="ingest-metrics",
            )
            _LOGGER.info(
                "%d workers; metrics of all on http://%s:%d/metrics, health on /healthz",
                self.workers,
                ing.metrics_host,
                ing.metrics_port,
            )
        ctx = mp.get_context("spawn")  # no fork of a process that may hold threads and locks
        level = logging.getLogger().getEffectiveLevel()
        readers = []
        for i in range(self.workers):
            ours, theirs = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=_worker_main,
                args=(self.config, i, theirs, level, os.getpid()),
                name=f"ingest-worker-{i}",
            )
            proc.start()
            theirs.close()
            self._procs.append(proc)
            reader = threading.Thread(
                target=self._receive, args=(i, ours), name=f"ingest-seqs-{i}", daemon=True
            )
            reader.start()
            readers.append(reader)
        code = 0
        while not stop.wait(check_s):
            ended = [(i, p) for i, p in enumerate(self._procs) if not p.is_alive()]
            if ended:
                for i, gone in ended:
                    _LOGGER.critical(
                        "ingest worker %d (pid %s) ended with %s: stopping the others and "
                        "exiting so that the ingest is started again; the broker keeps what "
                        "was not acknowledged",
                        i,
                        gone.pid,
                        _how(gone.exitcode),
                    )
                code = 1
                break
        code = max(code, self._stop_workers())
        for reader in readers:
            reader.join(5)
        if server is not None:
            server.shutdown()
            server.server_close()
        return code

    def _stop_workers(self) -> int:
        """SIGTERM every worker (each writes and acknowledges what it holds), then wait; 1 if
        one had to be killed or did not end cleanly."""
        for proc in self._procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)
        code = 0
        for i, proc in enumerate(self._procs):
            proc.join(self.stop_timeout_s)
            if proc.is_alive():
                _LOGGER.error("ingest worker %d did not stop in time: killed", i)
                proc.kill()
                proc.join(5)
                code = 1
            elif proc.exitcode not in (0, -signal.SIGTERM):
                code = 1  # ended by our SIGTERM before it took it over: it held nothing yet
        return code

    def _receive(self, index: int, conn: Connection) -> None:
        """A worker's messages: its metrics port first, then its seqs in batches."""
        with conn:
            while True:
                try:
                    kind, payload = conn.recv()
                except (EOFError, OSError):
                    return  # the worker ended; run() notices
                if kind == "port":
                    self._ports[index] = payload
                    continue
                if kind == "writer":
                    self._outage(index, *payload)
                    continue
                with self._seqs_lock:
                    for site, room, seq, replay in payload:
                        self.seqs.observe(site, room, seq, replay=replay)

    def _outage(self, index: int, over: bool, what: str) -> None:
        """One line when the first worker finds InfluxDB away, one when the last is back."""
        with self._seqs_lock:
            was_down = bool(self._writers_down)
            if over:
                self._writers_down.discard(index)
                if was_down and not self._writers_down:
                    _LOGGER.info("InfluxDB takes writes again")
                return
            self._writers_down.add(index)
        if not was_down:
            _LOGGER.error(
                "InfluxDB is not taking writes (%s, worker %d); holding messages "
                "unacknowledged and retrying",
                what,
                index,
            )

    def seq_metrics(self) -> list[Metric]:
        with self._seqs_lock:
            return list(seq_families(self.seqs))

    def scrape(self) -> list[list[Metric]]:
        """Each answering worker's metrics."""
        out = []
        for index in sorted(self._ports):
            text = _get(self._ports[index], "/metrics")
            if text is not None:
                out.append(list(text_string_to_metric_families(text)))
        return out

    def health(self) -> list[LoopHealth]:
        """Each loop as the worker with the most telling state reports it (a failing one, else
        one that retries or writes), then one entry per worker process."""
        loops: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        workers = []
        for i, proc in enumerate(self._procs):
            name = f"worker-{i}"
            cid = client_id(self.config.ingest.client_id, i)
            if not proc.is_alive():
                detail = f"{cid}: ended with {_how(proc.exitcode)}"
                workers.append(LoopHealth(name, ok=False, state="dead", detail=detail))
                continue
            port = self._ports.get(i)
            answer = _get(port, "/healthz") if port else None
            if answer is None:
                detail = f"{cid}, pid {proc.pid}: no health answer (starting?)"
                workers.append(LoopHealth(name, ok=False, state="unanswered", detail=detail))
                continue
            body = json.loads(answer)
            for loop, state in body["loops"].items():
                loops.setdefault(loop, []).append((i, state))
            detail = f"{cid}, pid {proc.pid}"
            workers.append(
                LoopHealth(name, ok=body["status"] == "ok", state="running", detail=detail)
            )
        return [_telling(loop, states) for loop, states in loops.items()] + workers


class _Merged(Collector):
    """The workers' metrics added up, the parent's seq accounting, and how many run."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def collect(self) -> Iterator[Metric]:
        sup = self.supervisor
        scraped = sup.scrape()
        own: list[Metric] = [
            GaugeMetricFamily(
                "learnroom_ingest_workers", "worker processes configured", sup.workers
            ),
            GaugeMetricFamily(
                "learnroom_ingest_workers_answering",
                "worker processes whose metrics were read for this scrape",
                len(scraped),
            ),
        ]
        yield from merge([*scraped, sup.seq_metrics(), own])


def _telling(loop: str, states: Iterable[tuple[int, dict[str, Any]]]) -> LoopHealth:
    ordered = sorted(states, key=lambda s: (s[1]["ok"], s[1]["state"] in _QUIET, s[0]))
    index, state = ordered[0]
    return LoopHealth(
        loop,
        ok=bool(state["ok"]),
        state=state["state"],
        detail=f"worker {index}: {state['detail']}",
    )


def _get(port: int | None, path: str) -> str | None:
    """A worker's answer on its loopback port (503 included: its body says why), or None."""
    if not port:
        return None
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return str(resp.read().decode())
    except urllib.error.HTTPError as exc:
        return str(exc.read().decode())
    except OSError:
        return None


def _how(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"signal {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"


# -- the worker process ----------------------------------------------------------------------


def _worker_main(
    config: CentralConfig, index: int, conn: Connection, level: int, parent: int
) -> None:
    """One worker: an ``Ingest`` with its own client id, its metrics on a loopback port told
    to the parent, its seqs shipped to the parent; exits with ``Ingest.run``'s code."""
    _die_with_parent(parent)
    logging.basicConfig(
        level=level, format=f"%(asctime)s %(levelname)s %(name)s[{index}]: %(message)s"
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    assert config.influx is not None  # noqa: S101 - the command checked it
    sink: deque[tuple[str, str, int, bool]] = deque()
    ingest = Ingest(worker_config(config, index), writer_from_config(config.influx), seq_sink=sink)
    server = None
    if config.ingest.metrics_port:
        server = serve("127.0.0.1", 0, ingest.registry, ingest.health, name="worker-metrics")
    sending = threading.Lock()  # the writer thread and the shipper share the pipe

    def tell(*message: object) -> None:
        with sending, contextlib.suppress(OSError):  # the parent gone: PDEATHSIG ends us
            conn.send(message)

    tell("port", server.server_port if server is not None else 0)
    ingest.outage_hook = lambda over, what: tell("writer", (over, what))
    done = threading.Event()
    shipper = threading.Thread(
        target=_ship, args=(sink, tell, done), name="ingest-seq-shipper", daemon=True
    )
    shipper.start()
    code = ingest.run(stop)
    done.set()
    shipper.join(5)
    if server is not None:
        server.shutdown()
        server.server_close()
    conn.close()
    sys.exit(code)


def _ship(
    sink: deque[tuple[str, str, int, bool]],
    tell: Callable[..., None],
    done: threading.Event,
) -> None:
    """Every 0.1 s what the receive thread observed, in one pipe message; no lock per message
    (a deque's append and popleft are atomic)."""
    while True:
        finished = done.wait(0.1)
        items = [sink.popleft() for _ in range(len(sink))]
        if items:
            tell("seqs", items)
        if finished:
            return


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel SIGKILLs this worker when the parent dies, so no orphan holds a
    session the restarted parent's worker needs. Elsewhere a no-op."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
