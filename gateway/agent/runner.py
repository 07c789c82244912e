"""The agent: sources → envelopes → outbox → broker, each loop a named task.

Everything is built in ``main``-like code and handed in (STYLE.md "Objects and lifecycles"):
the agent itself opens nothing until ``run``.

How it ends: a clean stop (SIGTERM from systemd, SIGINT) publishes ``online: false`` through
the outbox and exits 0. Anything else that ends ``run`` (a fatal ``OutboxError`` such as an
I/O error on the SD card, a task that raised) is loud: the link says offline before its client
closes (``lastword.py``), and the error leaves ``run`` as itself (not wrapped in a group), so
the command exits 1 with one line and systemd restarts it. A full disk is not fatal
(``outbox.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any

from gateway import __version__, const
from gateway.agent import systemd
from gateway.agent.config import RoomConfig
from gateway.agent.link import MqttLink, Will
from gateway.agent.outbox import Outbox
from gateway.agent.sources.base import Source
from gateway.clock import Clock
from gateway.errors import OutboxError
from gateway.models import AnyData, StatusData, StatusEnvelope, kind_of, make_envelope
from gateway.topics import Topic

_LOGGER = logging.getLogger(__name__)


class Agent:
    """The room gateway. Also the ``Sink`` its sources report to."""

    def __init__(
        self,
        config: RoomConfig,
        outbox: Outbox,
        sources: Sequence[Source],
        clock: Clock,
        *,
        resolve_host: Callable[[], Awaitable[tuple[str, int]]] | None = None,
        extra_tasks: Sequence[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = (),
        rng: random.Random | None = None,
        version: str = __version__,
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.sources = list(sources)
        self.clock = clock
        self.version = version
        self.site = config.room.site
        self.room = config.room.room
        self.prefix = config.mqtt.prefix
        self._extra_tasks = list(extra_tasks)
        self._faults: dict[str, str] = {}
        self._dirty = asyncio.Event()
        self._put = asyncio.Event()
        self._new_rows = asyncio.Event()
        self._stop = asyncio.Event()
        self._ack_seen = asyncio.Event()
        self._acks_new = asyncio.Event()
        self._started = clock.now()
        #: Readings refused before the outbox (too large); counted, never silently lost.
        self.refused = 0
        self.link = MqttLink(
            config.mqtt,
            outbox,
            config.outbox,
            client_id=f"learnroom-{self.site}-{self.room}",
            will=self._will,
            birth=self._birth,
            new_rows=self._new_rows,
            acked=self._on_ack,
            fault=self.fault,
            resolve_host=resolve_host,
            rng=rng,
        )

    def add_task(self, name: str, factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``factory()`` beside the sources (mDNS, the simulation); before ``run``."""
        self._extra_tasks.append((name, factory))

    # -- Sink ------------------------------------------------------------------------------
    def emit(self, data: AnyData, sub: str | None = None, ts: datetime | None = None) -> None:
        kind = kind_of(data)
        topic = Topic(self.prefix, self.site, self.room, kind, sub)
        seq = self.outbox.next_seq  # taken only once the payload is known to fit
        env = make_envelope(self.site, self.room, data, ts or self.clock.now(), seq)
        payload = env.model_dump_json().encode()
        if len(payload) > const.MAX_PAYLOAD_BYTES:
            self.refused += 1
            _LOGGER.error("%s reading of %d bytes is too large; not sent", kind, len(payload))
            return
        self.outbox.allocate_seq()
        self.outbox.put(seq, str(topic), payload, live=topic.live or kind == "status")
        self._put.set()
        self._dirty.set()

    def fault(self, source: str, problem: str | None) -> None:
        before = self._faults.get(source)
        if problem is None:
            if before is not None:
                _LOGGER.info("%s is well again", source)
                del self._faults[source]
        elif before != problem:
            _LOGGER.warning("%s: %s", source, problem)
            self._faults[source] = problem

    @property
    def faults(self) -> list[str]:
        """Failing sources, and readings refused for size, as health reports them."""
        out = sorted(self._faults) + self.outbox.faults
        if self.refused:
            out.append(f"refused-oversized:{self.refused}")
        return out

    def outbox_stats(self) -> tuple[int, int]:
        return self.outbox.depth, self.outbox.dropped

    # -- status ------------------------------------------------------------------------------
    def _status_topic(self) -> str:
        return str(Topic(self.prefix, self.site, self.room, "status"))

    def _will(self) -> Will:
        env = StatusEnvelope(
            site=self.site,
            room=self.room,
            ts=self.clock.now(),
            data=StatusData(online=False, version=self.version, started=self._started),
        )
        return Will(self._status_topic(), env.model_dump_json(exclude={"seq"}).encode())

    def _birth(self) -> int:
        """Commit the birth message; its seq, so the link can tell whether it was delivered."""
        seq = self.outbox.next_seq
        self.emit(StatusData(online=True, version=self.version, started=self._started))
        self._flush()
        return seq

    def _flush(self, *, deletes: bool = True) -> None:
        self._put.clear()
        if deletes or self.outbox.pending_acks == 0:
            self._dirty.clear()
        if self.outbox.flush(deletes=deletes):
            self._new_rows.set()

    # -- tasks -------------------------------------------------------------------------------
    async def _committer(self) -> None:
        """One commit of inserts per ``commit_interval_s``; deletes in bulk, rarely."""
        settings = self.config.outbox
        loop = asyncio.get_running_loop()
        last_delete = loop.time()
        while True:
            await self._dirty.wait()
            if not self.outbox.pending_puts:
                left = settings.delete_interval_s - (loop.time() - last_delete)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._put.wait(), max(left, 0.0))
            if self.outbox.pending_puts:
                await asyncio.sleep(settings.commit_interval_s)
            deletes = loop.time() - last_delete >= settings.delete_interval_s
            self._flush(deletes=deletes)
            if deletes:
                last_delete = loop.time()

    async def _ack_witness(self) -> None:
        """PUBACKs reach the seq mark within a commit interval (a page-cache write, no SQLite
        commit), so a crash re-sends only what was acknowledged after it."""
        while True:
            await self._acks_new.wait()
            await asyncio.sleep(self.config.outbox.commit_interval_s)
            self._acks_new.clear()
            self.outbox.witness_acks()

    async def _watchdog(self) -> None:
        interval = systemd.watchdog_interval()
        systemd.notify("READY=1")
        if interval is None:
            return
        while True:
            systemd.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    def stop(self) -> None:
        """Ask ``run`` to say goodbye and return (a SIGTERM handler calls this)."""
        self._stop.set()

    async def run(self) -> None:
        """Run until ``stop``; then say offline while still connected, and commit."""
        _LOGGER.info(
            "agent %s/%s starting with sources: %s",
            self.site,
            self.room,
            ", ".join(s.name for s in self.sources) or "none",
        )
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(self._committer(), name="outbox-commit"),
                    tg.create_task(self._ack_witness(), name="outbox-ack-witness"),
                    tg.create_task(self.link.run(), name="mqtt-link"),
                    tg.create_task(self._watchdog(), name="systemd-watchdog"),
                ]
                tasks += [
                    tg.create_task(self._guard(source), name=f"source-{source.name}")
                    for source in self.sources
                ]
                tasks += [tg.create_task(f(), name=name) for name, f in self._extra_tasks]
                await self._stop.wait()
                systemd.notify("STOPPING=1")
                for task in tasks:
                    if task.get_name() != "mqtt-link":
                        task.cancel()
                self.link.clean_stop = await self._goodbye()
                for task in tasks:
                    task.cancel()
        except BaseExceptionGroup as group:
            fatal = _first(group, OutboxError)
            if fatal is None:
                raise
            raise fatal from group  # one line for systemd's journal, the group as the cause
        finally:
            try:
                self._flush()
            except OutboxError as exc:
                _LOGGER.warning("final commit failed: %s", exc)  # the first error is raised
            _LOGGER.info("agent stopped; %d messages wait in the outbox", self.outbox.depth)

    async def _guard(self, source: Source) -> None:
        """A source that crashes is a bug; report it as a fault and restart it, not the agent."""
        delay = 1.0
        while True:
            try:
                await source.run(self)
                return
            except (asyncio.CancelledError, OutboxError):
                raise  # the outbox failing is the agent's fault, not the source's
            except Exception as exc:
                _LOGGER.exception("source %s crashed; restarting in %.0f s", source.name, delay)
                self.fault(source.name, f"crashed: {type(exc).__name__}")
                await self.clock.sleep(delay)
                delay = min(delay * 2, 300.0)

    async def _goodbye(self) -> bool:
        """On a clean stop, say offline ourselves: the broker sends the Will only on a crash.

        True when said (or there is no broker to say it to); else the link's last word must.
        """
        seq = self.outbox.next_seq
        self.emit(StatusData(online=False, version=self.version, started=self._started))
        self._flush()
        if not self.link.stats.connected:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._acked(seq), timeout=3.0)
        return self.outbox.is_acked(seq)

    async def _acked(self, seq: int) -> None:
        while not self.outbox.is_acked(seq) and self.link.stats.connected:
            self._ack_seen.clear()
            await self._ack_seen.wait()

    def _on_ack(self) -> None:
        self._dirty.set()
        self._ack_seen.set()
        self._acks_new.set()


def _first(group: BaseExceptionGroup[BaseException], kind: type[Exception]) -> Exception | None:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found = _first(exc, kind)
            if found is not None:
                return found
        elif isinstance(exc, kind):
            return exc
    return None
