"""The agent against a real Mosquitto: topics, envelopes, retain flags, outages, the outbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.agent.config import RoomConfig, parse_room_config
from gateway.agent.outbox import Outbox
from gateway.agent.runner import Agent
from gateway.agent.sources.base import Sink
from gateway.clock import RealClock
from gateway.config import parse_mqtt_url
from gateway.launch.broker import Mosquitto
from gateway.models import (
    EnvironmentData,
    EventData,
    HealthData,
    LockerData,
    OccupancyData,
    SlotState,
    WifiData,
    parse_envelope,
)
from tests.mqtt_util import Collector, retained

SITE, ROOM = "test-site", "room-1"
PREFIX = f"learnroom/v1/{SITE}/{ROOM}"


def room_config(broker: Mosquitto, state: Path, **outbox: object) -> RoomConfig:
    mqtt = parse_mqtt_url(broker.url).model_dump()
    mqtt.update(reconnect_min_s=0.1, reconnect_max_s=0.5)
    return parse_room_config(
        {
            "room": {"site": SITE, "room": ROOM, "capacity": 20},
            "mqtt": mqtt,
            "outbox": {
                "path": str(state / "outbox.sqlite"),
                "commit_interval_s": 0.05,
                "replay_jitter_s": 0,
                "replay_rate": 1000,
                **outbox,
            },
        },
        "test",
        environ={},
    )


class Scripted:
    """A source that emits what the test queues, so the test controls every reading."""

    name = "scripted"

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[object, str | None]] = asyncio.Queue()

    async def run(self, sink: Sink) -> None:
        while True:
            data, sub = await self.queue.get()
            sink.emit(data, sub)  # type: ignore[arg-type]


async def start(config: RoomConfig, source: Scripted) -> tuple[Agent, asyncio.Task[None], Outbox]:
    outbox = Outbox(config.outbox.path, config.outbox.max_messages)
    outbox.open()
    agent = Agent(config, outbox, [source], RealClock())
    task = asyncio.create_task(agent.run())
    return agent, task, outbox


async def stop(agent: Agent, task: asyncio.Task[None], outbox: Outbox) -> None:
    agent.stop()
    await asyncio.wait_for(task, 10)
    outbox.close()


async def wait(pred, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


def one_of_each() -> list[tuple[object, str | None]]:
    now = datetime.now(UTC)
    return [
        (OccupancyData(people=3, occupied=True, seats_total=10, seats_free=7, capacity=20), None),
        (EnvironmentData(co2_ppm=812.0, temperature_c=21.5, humidity_pct=44.0), None),
        (WifiData(ssid="eduroam", rssi_dbm=-61.0, loss_pct=0.0, ok=True), None),
        (
            LockerData(door_open=False, slots=[SlotState(slot="1", present=True, charging=True)]),
            "a",
        ),
        (EventData(type="checkout", locker="a", slot="1", due=now), None),
        (HealthData(uptime_s=1.0, outbox_depth=0, outbox_dropped=0), None),
    ]


async def test_every_kind_on_its_topic_with_its_retain_flag(mosquitto: Mosquitto, state_dir: Path):
    config = room_config(mosquitto, state_dir)
    source = Scripted()
    with Collector(mosquitto.port) as sub:
        agent, task, outbox = await start(config, source)
        for item in one_of_each():
            source.queue.put_nowait(item)
        got = await asyncio.to_thread(
            sub.wait_for, lambda m: len({x.topic for x in m}) >= 7, 20, "one message per kind"
        )
        await stop(agent, task, outbox)
    by_topic = {m.topic: m for m in got}
    expected_retain = {
        f"{PREFIX}/status": True,
        f"{PREFIX}/occupancy": True,
        f"{PREFIX}/environment": True,
        f"{PREFIX}/wifi": True,
        f"{PREFIX}/lockers/a": True,
        f"{PREFIX}/events": False,
        f"{PREFIX}/health": True,
    }
    assert set(by_topic) == set(expected_retain)
    for topic, retain in expected_retain.items():
        msg = by_topic[topic]
        env = parse_envelope(msg.payload)
        assert (env.site, env.room) == (SITE, ROOM)
        assert topic.split("/")[4] == env.kind
        assert msg.retain is retain, topic
        assert env.seq is not None
    seqs = sorted(parse_envelope(m.payload).seq or 0 for m in got)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "seq rises by one per message"


async def test_clean_stop_says_offline_retained(mosquitto: Mosquitto, state_dir: Path):
    config = room_config(mosquitto, state_dir)
    agent, task, outbox = await start(config, Scripted())
    await wait(lambda: agent.link.stats.connected)
    await stop(agent, task, outbox)
    state = await asyncio.to_thread(retained, mosquitto.port, f"{PREFIX}/status")
    env = parse_envelope(state[f"{PREFIX}/status"].payload)
    assert env.kind == "status"
    assert env.data.online is False


async def test_broker_outage_loses_nothing_and_keeps_newest_retained(
    mosquitto: Mosquitto, state_dir: Path
):
    config = room_config(mosquitto, state_dir)
    source = Scripted()
    with Collector(mosquitto.port, persistent=True) as sub:
        agent, task, outbox = await start(config, source)
        await wait(lambda: agent.link.stats.connected)
        source.queue.put_nowait((OccupancyData(people=1, occupied=True), None))
        await asyncio.to_thread(sub.wait_for, lambda m: any("occupancy" in x.topic for x in m))
        mosquitto.stop()
        await wait(lambda: not agent.link.stats.connected)
        for people in range(2, 52):  # readings taken while the broker is down
            source.queue.put_nowait((OccupancyData(people=people, occupied=True), None))
            source.queue.put_nowait((EventData(type="door_opened", locker="a"), None))
        await wait(lambda: outbox.depth >= 100)
        mosquitto.start()
        got = await asyncio.to_thread(
            sub.wait_for,
            lambda m: (
                sum("occupancy" in x.topic for x in m) >= 51
                and sum("events" in x.topic for x in m) >= 50
            ),
            30,
            "the backlog",
        )
        await wait(lambda: outbox.depth == 0)
        await stop(agent, task, outbox)
    # the Last Will carries no seq
    seqs = {s for m in got if (s := parse_envelope(m.payload).seq) is not None}
    assert seqs == set(range(min(seqs), max(seqs) + 1)), "no seq missing"
    occ = [m for m in got if m.topic.endswith("/occupancy")]
    after_outage = occ[1:]
    newest = [m for m in after_outage if m.json["data"]["people"] == 51]
    assert len(newest) >= 1 and all(m.retain for m in newest), "the present is retained"
    replayed = [m for m in after_outage if m.json["data"]["people"] < 51]
    assert replayed and not any(m.retain for m in replayed), "replays never overwrite the present"
    assert occ.index(newest[0]) < max(occ.index(m) for m in replayed), "present state goes first"
    state = await asyncio.to_thread(retained, mosquitto.port, f"{PREFIX}/occupancy")
    assert state[f"{PREFIX}/occupancy"].json["data"]["people"] == 51


async def test_full_outbox_drops_oldest_and_counts(mosquitto: Mosquitto, state_dir: Path):
    config = room_config(mosquitto, state_dir, max_messages=20)
    with Collector(mosquitto.port, persistent=True) as sub:
        mosquitto.stop()  # nothing can leave: the outbox fills
        source = Scripted()
        agent, task, outbox = await start(config, source)
        for people in range(50):
            source.queue.put_nowait((OccupancyData(people=people, occupied=True), None))
        await wait(lambda: outbox.pending_puts == 0 and outbox.dropped == 30)
        assert outbox.depth == 20
        mosquitto.start()
        # on connect the birth message joins the full outbox and pushes out one more
        got = await asyncio.to_thread(
            sub.wait_for, lambda m: sum("occupancy" in x.topic for x in m) >= 19, 30
        )
        # at-least-once: a resubscribing client may see the retained one twice
        seen = sorted({m.json["data"]["people"] for m in got if m.topic.endswith("occupancy")})
        assert seen == list(range(31, 50)), "the oldest were dropped, the newest kept"
        assert outbox.dropped == 31
        agent.emit(HealthData(uptime_s=1, outbox_depth=outbox.depth, outbox_dropped=outbox.dropped))
        got = await asyncio.to_thread(sub.wait_for, lambda m: any("health" in x.topic for x in m))
    health = next(m for m in got if m.topic.endswith("/health"))
    assert health.json["data"]["outbox_dropped"] == 31
    await stop(agent, task, outbox)
    with Outbox(config.outbox.path, 20) as reopened:
        assert reopened.dropped == 31, "the drop count survives a restart"


async def test_bad_credentials_said_once_not_hot_looped(
    tmp_path: Path, state_dir: Path, caplog: pytest.LogCaptureFixture
):
    import subprocess

    from gateway.launch.broker import mosquitto_path

    pwfile = tmp_path / "passwd"
    pwfile.write_text("")
    subprocess.run(
        ["mosquitto_passwd", "-b", str(pwfile), "gw", "right"], check=True, capture_output=True
    )
    broker = Mosquitto(tmp_path / "auth", allow_anonymous=False, extra=f"password_file {pwfile}\n")
    assert mosquitto_path()
    with broker.running():
        config = room_config(broker, state_dir)
        mqtt = config.mqtt.model_copy(
            update={"username": "gw", "password": "wrong", "auth_retry_s": 60}
        )
        config = config.model_copy(update={"mqtt": mqtt})
        agent, task, outbox = await start(config, Scripted())
        await wait(lambda: agent.link.stats.auth_failures >= 1)
        await asyncio.sleep(1.0)
        assert agent.link.stats.auth_failures == 1, "no hot loop against the broker"
        errors = [r for r in caplog.records if "refused user 'gw'" in r.getMessage()]
        assert len(errors) == 1
        assert "mqtt.password" in errors[0].getMessage()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        outbox.close()


async def test_oversized_reading_is_refused_counted_and_costs_no_seq(
    mosquitto: Mosquitto, state_dir: Path
):
    config = room_config(mosquitto, state_dir)
    with Outbox(config.outbox.path, 100) as outbox:
        agent = Agent(config, outbox, [], RealClock())
        slots = [SlotState(slot=f"slot-{i:04d}-{'x' * 20}", present=True) for i in range(2000)]
        agent.emit(LockerData(door_open=False, slots=slots), "a")
        agent.emit(OccupancyData(people=1, occupied=True))
        outbox.flush()
        rows = outbox.rows_after(-1, 100, 10)
    assert [r.topic.rsplit("/", 1)[-1] for r in rows] == ["occupancy"]
    assert rows[0].seq == 0, "the refused reading took no seq: no false gap at the centre"
    assert agent.refused == 1
    assert "refused-oversized:1" in agent.faults, "health tells IT support"
