"""``learnroom demo``: a broker, simulated rooms and a live table, all on this machine.

The table is fed from the broker like any other consumer would be (it subscribes to the
rooms' topics), so what it shows is what really went over MQTT. The ingest writes the same
stream into InfluxDB: the one given with ``--influx``, or an ``influxd`` from PATH started in
the demo's temporary directory. Later services (alerts, display) join here as further tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import aiomqtt
from aiomqtt.types import PayloadType
from rich.console import Console
from rich.live import Live
from rich.table import Table

from gateway import const
from gateway.agent.config import RoomConfig
from gateway.central.alerts.service import AlertService
from gateway.central.config import (
    DEFAULT_DATABASE,
    AcceptSection,
    AlertsSection,
    CentralConfig,
    CentralMqttSection,
    DisplayRoom,
    DisplaySection,
    InfluxSection,
    IngestSection,
    parse_influx_url,
)
from gateway.central.display.app import EmbeddedServer, build_hub, server_for
from gateway.central.display.sample import (
    DEMO_HOURS,
    DEMO_TZ,
    SITES,
    DemoRoom,
    demo_rooms,
    display_rooms,
)
from gateway.central.hours import OpeningHours
from gateway.central.ingest.service import Ingest
from gateway.central.tools.influx_setup import setup_v1
from gateway.central.writers import writer_from_config
from gateway.clock import ScaledClock
from gateway.config import parse_mqtt_url
from gateway.errors import TopicError
from gateway.launch.alertmanager import Alertmanager, alertmanager_path
from gateway.launch.broker import Mosquitto, embedded_amqtt, free_port, mosquitto_path, port_open
from gateway.launch.influxd import Influxd
from gateway.topics import Topic, room_filter

_LOGGER = logging.getLogger(__name__)

NO_SHOW_ARRIVALS = time(9, 30)  # nobody comes to the no-show room before then


@dataclass
class RoomView:
    site: str
    room: str
    data: dict[str, dict[str, Any]] = field(default_factory=dict)
    lockers: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: int = 0
    last_ts: str | None = None
    #: firing alerts from the retained ``alerts/<rule>`` topics
    alerts: dict[str, str] = field(default_factory=dict)


def agent_config(room: DemoRoom, url: str, workdir: Path) -> RoomConfig:
    """The simulated room on the demo's broker. Group rooms hold 8 people and open spaces 14
    on their 8 seats, so seats run out at the busy hours; nobody comes to the no-show room
    before its booking is over."""
    from gateway.agent.build import simulated_room_config  # noqa: PLC0415

    config = simulated_room_config(room.site, room.room)
    update: dict[str, Any] = {"name": room.name, "capacity": 8 if room.bookable else 14}
    if room.no_show:
        update["opens"] = NO_SHOW_ARRIVALS
    path = workdir / f"outbox-{room.site}-{room.room}.sqlite"
    return config.model_copy(
        update={
            "room": config.room.model_copy(update=update),
            "mqtt": parse_mqtt_url(url, config.mqtt),
            "outbox": config.outbox.model_copy(update={"path": path}),
            "agent": config.agent.model_copy(update={"advertise": False}),
        }
    )


@contextlib.asynccontextmanager
async def demo_broker(
    port: int, workdir: Path, kind: str = "auto"
) -> AsyncIterator[tuple[str, bool]]:
    """Mosquitto when it is installed (as in production), else amqtt in this process.
    Yields the URL and whether the broker speaks MQTT 5 (amqtt does not)."""
    if port == 0 or port_open("127.0.0.1", port):
        port = free_port()  # 1883 taken (a system broker): any free port will do
    if kind == "mosquitto" or (kind == "auto" and mosquitto_path() is not None):
        broker = Mosquitto(workdir / "mosquitto", port)
        broker.start()
        try:
            yield broker.url, True
        finally:
            broker.stop()
    else:
        _LOGGER.info("mosquitto not found; using the embedded amqtt broker")
        async with embedded_amqtt("127.0.0.1", port) as url:
            yield url, False


@contextlib.contextmanager
def demo_influx(url: str | None, workdir: Path, console: Console) -> Iterator[InfluxSection | None]:
    """``--influx`` if given, else ``influxd`` from PATH in ``workdir``, else no database."""
    if url:
        yield parse_influx_url(url, None, os.environ)
        return
    if shutil.which("influxd") is None:
        console.print("influxd not installed (apt-get install influxdb): the demo runs no ingest")
        yield None
        return
    server = Influxd(workdir / "influxdb")
    server.start()
    try:
        setup_v1(server.url, DEFAULT_DATABASE)  # as `learnroom influx-setup` does
        yield InfluxSection(url=server.url, database=DEFAULT_DATABASE)
    finally:
        server.stop()


ALERTMANAGER_DEMO = """
route:
  receiver: demo
  group_by: [alertname, site, room]
receivers:
  - name: demo
"""


@contextlib.contextmanager
def demo_alertmanager(workdir: Path, console: Console) -> Iterator[str | None]:
    """Alertmanager from PATH with a receiver that sends nowhere: its UI and API show the
    alerts (``/#/alerts``) without mailing anyone."""
    if alertmanager_path() is None:
        console.print("prometheus-alertmanager not installed: alerts go to MQTT and InfluxDB")
        yield None
        return
    am = Alertmanager(workdir / "alertmanager", ALERTMANAGER_DEMO)
    am.start()
    try:
        yield am.url
    finally:
        am.stop()


def alert_service(
    url: str, mqtt5: bool, influx: InfluxSection | None, am_url: str | None, clock: ScaledClock
) -> AlertService:
    """Alerts on the simulated clock, so "for 2 minutes" means simulated minutes."""
    mqtt = parse_mqtt_url(url).model_dump() | {"protocol": "5" if mqtt5 else "3.1.1"}
    config = CentralConfig(
        mqtt=CentralMqttSection.model_validate(mqtt),
        influx=influx,
        alerts=AlertsSection(
            alertmanager_url=am_url,
            client_id=f"learnroom-demo-alerts-{os.getpid()}",
            metrics_port=0,
            evaluate_interval_s=1.0,
            resend_interval_s=30.0,
            startup_grace_s=5.0,
            # silence is judged in simulated seconds; at 60x a busy demo can lag a real
            # second, so the demo waits longer than a room would
            report_interval_s=30.0 * max(1.0, clock.speed / 20),
        ),
    )
    writer = writer_from_config(influx) if influx is not None else None
    return AlertService(config, writer=writer, clock=clock.now)


def display_server(
    url: str, mqtt5: bool, port: int, clock: ScaledClock, rooms: list[DisplayRoom], workdir: Path
) -> tuple[EmbeddedServer, int]:
    """The resident display on ``port`` (a free one when it is taken), on simulated time,
    with the rooms' names, kinds and calendars."""
    if port == 0 or port_open("127.0.0.1", port):
        port = free_port()
    mqtt = parse_mqtt_url(url).model_dump() | {"protocol": "5" if mqtt5 else "3.1.1"}
    config = CentralConfig(
        mqtt=CentralMqttSection.model_validate(mqtt),
        display=DisplaySection(
            port=port,
            client_id=f"learnroom-demo-display-{os.getpid()}",
            metrics_port=0,
            sites=SITES,
            rooms=rooms,
            hours=OpeningHours.model_validate(DEMO_HOURS | {"timezone": str(DEMO_TZ)}),
            # the simulated day runs fast: a room is silent after three simulated intervals
            report_interval_s=60.0,
            # a simulated hour a (real) minute; stale after six simulated hours
            calendar_refresh_s=60.0,
            calendar_stale_after_s=6 * 3600.0,
        ),
    )
    server = server_for(build_hub(config, workdir, clock=clock.now), embedded=True)
    assert isinstance(server, EmbeddedServer)  # noqa: S101 - for mypy
    return server, port


def start_ingest(url: str, mqtt5: bool, influx: InfluxSection, workdir: Path) -> tuple[Ingest, int]:
    """The ingest in this process; amqtt speaks neither MQTT 5 nor shared subscriptions."""
    metrics_port = free_port()
    mqtt = parse_mqtt_url(url).model_dump() | {"protocol": "5" if mqtt5 else "3.1.1"}
    config = CentralConfig(
        mqtt=CentralMqttSection.model_validate(mqtt),
        # the simulated day runs ahead of the ingest's real clock: any sane date is fine
        accept=AcceptSection(max_age_s=0, max_ahead_s=0),
        influx=influx,
        ingest=IngestSection(
            client_id=f"learnroom-demo-ingest-{os.getpid()}",
            shared_group="learnroom-ingest" if mqtt5 else "",
            metrics_port=metrics_port,
            rejected_file=workdir / "rejected.jsonl",
        ),
    )
    ingest = Ingest(config, writer_from_config(influx))
    ingest.start()
    return ingest, metrics_port


def co2_word(ppm: float | None) -> str:
    if ppm is None:
        return "-"
    if ppm < const.CO2_FINE_BELOW_PPM:
        return f"{ppm:.0f} good"
    if ppm <= const.CO2_CRITICAL_ABOVE_PPM:
        return f"{ppm:.0f} ventilate"
    return f"{ppm:.0f} CRITICAL"


def _local(ts: str | None) -> str:
    if not ts:
        return "-"
    when = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return when.astimezone(DEMO_TZ).strftime("%a %H:%M")


def render(views: dict[tuple[str, str], RoomView], url: str) -> Table:
    table = Table(title=f"learnroom demo - broker {url} - Ctrl-C stops", expand=True)
    for col in (
        "room",
        "gateway",
        "people",
        "state",
        "seats free",
        "devices",
        "CO2 ppm",
        "temp",
        "Wi-Fi",
        "outbox",
        "alerts",
        "room time",
    ):
        table.add_column(col)
    for (site, room), v in sorted(views.items()):
        st, occ = v.data.get("status", {}), v.data.get("occupancy", {})
        env, wifi, health = (
            v.data.get("environment", {}),
            v.data.get("wifi", {}),
            v.data.get("health", {}),
        )
        online = st.get("online")
        slots = [s for lk in v.lockers.values() for s in lk.get("slots", [])]
        present = sum(1 for s in slots if s.get("present"))
        temp = env.get("temperature_c")
        rssi = wifi.get("rssi_dbm")
        table.add_row(
            f"{site[:14]}/{room}",
            "online" if online else ("OFFLINE" if online is False else "-"),
            f"{occ.get('people', '-')}/{occ.get('capacity', '-')}" if occ else "-",
            ("occupied" if occ.get("occupied") else "free") if occ else "-",
            f"{occ.get('seats_free')}/{occ.get('seats_total')}" if occ.get("seats_total") else "-",
            f"{present}/{len(slots)}" if slots else "-",
            co2_word(env.get("co2_ppm")),
            f"{temp:.1f} °C" if temp is not None else "-",
            (f"{rssi:.0f} dBm " + ("ok" if wifi.get("ok") else "DEGRADED"))
            if rssi is not None
            else "-",
            str(health.get("outbox_depth", "-")),
            ", ".join(sorted(v.alerts.values())) or "-",
            _local(v.last_ts),
        )
    return table


async def watch(url: str, views: dict[tuple[str, str], RoomView], prefix: str) -> None:
    """Keep ``views`` up to date from the broker."""
    settings = parse_mqtt_url(url)
    while True:
        try:
            async with aiomqtt.Client(settings.host, settings.effective_port) as client:
                await client.subscribe(room_filter(prefix), qos=1)
                async for msg in client.messages:
                    _apply(views, prefix, str(msg.topic), msg.payload)
        except aiomqtt.MqttError:
            await asyncio.sleep(1)


def _apply(
    views: dict[tuple[str, str], RoomView], prefix: str, topic: str, payload: PayloadType
) -> None:
    try:
        t = Topic.parse(topic, prefix)
        if not isinstance(payload, bytes | bytearray | str):
            return
        view = views.setdefault((t.site, t.room), RoomView(t.site, t.room))
        if t.kind == "alerts" and t.sub is not None and not payload:
            view.alerts.pop(t.sub, None)  # resolved: the retained topic is cleared
            return
        env = json.loads(payload)
    except (TopicError, ValueError):
        return  # the demo table shows what is valid; the ingest counts the rest
    if t.kind == "alerts" and t.sub is not None:
        view.alerts[t.sub] = env.get("data", {}).get("rule", t.sub)
        return
    if t.kind == "lockers" and t.sub is not None:
        view.lockers[t.sub] = env.get("data", {})
    elif t.kind == "events":
        view.events += 1
    else:
        view.data[t.kind] = env.get("data", {})
    if t.kind != "status":
        view.last_ts = env.get("ts")


def start_central(
    stack: contextlib.AsyncExitStack,
    url: str,
    mqtt5: bool,
    influx: str | None,
    workdir: Path,
    console: Console,
) -> tuple[Ingest | None, InfluxSection | None, str | None]:
    """InfluxDB with the ingest (when there is one) and Alertmanager, closed with ``stack``."""
    database = stack.enter_context(demo_influx(influx, workdir, console))
    ingest = None
    if database is not None:
        ingest, metrics_port = start_ingest(url, mqtt5, database, workdir)
        stack.callback(ingest.stop)
        console.print(
            f"ingest: writing to InfluxDB at {database.url} (database "
            f"{database.bucket or database.db}), metrics at "
            f"http://127.0.0.1:{metrics_port}/metrics"
        )
    am_url = stack.enter_context(demo_alertmanager(workdir, console))
    if am_url:
        console.print(f"alerts: Alertmanager at {am_url}/#/alerts")
    return ingest, database, am_url


async def run_demo(
    *,
    rooms: int = 6,
    sites: int = 2,
    mqtt_port: int = 1883,
    speed: float = 60.0,
    seed: str = "1",
    duration: float | None = None,
    table: bool = True,
    broker: str = "auto",
    influx: str | None = None,
    port: int = 8080,
) -> int:
    from gateway.agent.build import build_agent  # noqa: PLC0415

    console = Console(width=None if sys.stdout.isatty() else 160)
    # start the simulated day at 07:30 local time today, so the demo opens with the doors
    start = datetime.combine(datetime.now(DEMO_TZ).date(), time(7, 30), DEMO_TZ).astimezone(UTC)
    plan = demo_rooms(rooms, sites)
    with tempfile.TemporaryDirectory(prefix="learnroom-demo-") as tmp:
        workdir = Path(tmp)
        async with (
            demo_broker(mqtt_port, workdir, broker) as (url, mqtt5),
            contextlib.AsyncExitStack() as stack,
        ):
            console.print(f"[bold]learnroom demo[/]: broker at {url}, {rooms} simulated rooms")
            ingest, database, am_url = start_central(stack, url, mqtt5, influx, workdir, console)
            agents = []
            for r in plan:
                config, seeded = agent_config(r, url, workdir), f"{seed}-{r.site}-{r.room}"
                agents.append(
                    await stack.enter_async_context(
                        build_agent(config, simulate=True, speed=speed, seed=seeded, start=start)
                    )
                )
            # the agents' clocks have started: the alerts' must not run ahead of them
            sim_clock = ScaledClock(start, speed)
            alerts = alert_service(url, mqtt5, database, am_url, sim_clock)
            views: dict[tuple[str, str], RoomView] = {}
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            import signal  # noqa: PLC0415

            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            async with asyncio.TaskGroup() as tg:
                runs = [tg.create_task(a.run(), name=f"agent-{a.site}-{a.room}") for a in agents]
                watcher = tg.create_task(watch(url, views, const.TOPIC_PREFIX), name="demo-watch")
                alerts_stop = asyncio.Event()
                alerting = tg.create_task(alerts.run(alerts_stop), name="demo-alerts")
                listed = display_rooms(plan, start.astimezone(DEMO_TZ).date(), workdir)
                web, web_port = display_server(url, mqtt5, port, sim_clock, listed, workdir)
                serving = tg.create_task(web.serve(), name="demo-display")
                console.print(f"display: http://127.0.0.1:{web_port}/ (kiosk: ?kiosk=1)")
                if duration is not None:
                    loop.call_later(duration, stop.set)
                if table:
                    with Live(render(views, url), console=console, refresh_per_second=2) as live:
                        while not stop.is_set():
                            live.update(render(views, url))
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(stop.wait(), 0.5)
                else:
                    await stop.wait()
                    console.print(render(views, url))  # the live state, before the goodbyes
                alerts_stop.set()
                await alerting
                web.should_exit = True
                await serving
                for agent in agents:
                    agent.stop()
                await asyncio.gather(*runs, return_exceptions=True)
                watcher.cancel()
            if ingest is not None:
                await asyncio.to_thread(ingest.wait_idle, 10)
                s = ingest.stats
                console.print(
                    f"ingest: {s.received} messages received, {s.points_written} points "
                    f"written to InfluxDB, {sum(s.rejected.values())} rejected"
                )
    return 0
