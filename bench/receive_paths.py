"""Receive paths side by side (not a test): is paho the wall, and would a Rust codec move it?

    python bench/receive_paths.py [--messages 60000]   (needs: pip install mqtt5)

One Mosquitto, one backlog per run waiting for a persistent MQTT 5 session (Receive Maximum
20 000, QoS 1, every message acknowledged), drained by:

- ``paho``: a bare paho-mqtt 2 callback that only acknowledges (bench/ingest_bench.py's ceiling);
- ``mqtt5``: an asyncio protocol with the ``mqtt5`` sans-I/O codec (Rust) reading the same
  packets and acknowledging each (the PUBACKs of one read go out in one write);
- ``paho+work`` and ``mqtt5+work``: the same, each message also put through what the ingest
  does per message on its receive thread: ``validate.check``, the unknown-name count,
  ``mapping.to_lines`` and the seq accounting (no batching, no database).

- ``ingest``: the real ``Ingest`` with a writer that only counts (batches, acknowledgement
  after the "write", seq accounting: everything but the database).

Messages per second from the first message to the last; every path ``--rounds`` times,
interleaved, and the best round of each kept (the load of others on a shared machine only ever
slows a round down), ratios from those. Results also go to bench/results/receive_paths.json.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest_bench import publish, session

from gateway.central.ingest.seqs import SeqTracker
from gateway.central.mapping import to_lines
from gateway.central.validate import Accepted, UnknownNames, Window, check
from gateway.launch.broker import Mosquitto

Work = Callable[[str, bytes | bytearray, bool], None]


def ingest_work() -> Work:
    """What ``Ingest._on_message`` does with a message before it joins a batch."""
    seqs, unknown, window = SeqTracker(), UnknownNames(), Window()

    def work(topic: str, payload: bytes | bytearray, replay: bool) -> None:
        result = check(topic, payload, window=window)
        unknown.count(result)
        if isinstance(result, Accepted):
            env = result.envelope
            to_lines(env, result.topic.sub)
            if env.seq is not None:
                seqs.observe(env.site, env.room, env.seq, replay=replay)

    return work


def ingest_drain(port: int, cid: str, n: int, _work: Work | None) -> float:
    """The real ``Ingest`` (receive thread, batches, acknowledgement after a write) with a
    writer that only counts: everything but the database."""
    from gateway.central.config import parse_central
    from gateway.central.ingest.service import Ingest
    from gateway.central.writers import WriteResult

    class Counting:
        def write(self, lines: list[str]) -> WriteResult:
            return WriteResult(written=len(lines))

        def close(self) -> None:
            """Nothing to close."""

    config = parse_central(
        {
            "mqtt": {"host": "127.0.0.1", "port": port},
            "influx": {"url": "http://127.0.0.1:1", "database": "none"},
            "ingest": {
                "client_id": cid,
                "shared_group": "",
                "metrics_port": 0,
                "rejected_file": "",
            },
        },
        "bench",
        environ={},
    )
    ingest = Ingest(config, Counting())
    # the first message's time from the receive thread; polling here seldom, since every
    # wake-up of this thread takes the GIL from the receive thread
    first = [0.0]
    on_message: Any = ingest.client.on_message

    def stamp(client: Any, userdata: Any, msg: Any) -> None:
        if not first[0]:
            first[0] = time.monotonic()
        on_message(client, userdata, msg)

    ingest.client.on_message = stamp
    ingest.start()
    while ingest.stats.acked < n:
        time.sleep(0.02)
    rate = n / (time.monotonic() - first[0])
    ingest.stop()
    return rate


def paho_drain(port: int, cid: str, n: int, work: Work | None) -> float:
    got, first, done = [0], [0.0], threading.Event()

    def on_message(c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        if not got[0]:
            first[0] = time.monotonic()
        if work is not None:
            work(m.topic, m.payload, bool(m.retain or m.dup))
        got[0] += 1
        c.ack(m.mid, 1)
        if got[0] >= n:
            done.set()

    c = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5, manual_ack=True
    )
    c.on_message = on_message
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 20000
    c.connect("127.0.0.1", port, clean_start=False, properties=props)
    c.loop_start()
    done.wait(600)
    rate = n / (time.monotonic() - first[0])
    c.disconnect()
    c.loop_stop()
    return rate


def mqtt5_drain(port: int, cid: str, n: int, work: Work | None) -> float:
    codec: Any = importlib.import_module("mqtt5")

    class Receiver(asyncio.Protocol):
        def __init__(self, done: asyncio.Future[float]) -> None:
            self.buf = bytearray()
            self.got = 0
            self.first = 0.0
            self.done = done
            self.transport: Any = None

        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            connect = codec.ConnectPacket(
                cid, clean_start=False, session_expiry_interval=3600, receive_max=20000
            )
            transport.write(connect.write())

        def data_received(self, data: bytes) -> None:
            self.buf += data
            pos, acks = 0, []
            with memoryview(self.buf) as view:
                while True:
                    try:
                        packet, used = codec.read(view[pos:])
                    except IndexError:  # not a whole packet yet
                        break
                    pos += used
                    if isinstance(packet, codec.PublishPacket):
                        if not self.got:
                            self.first = time.monotonic()
                        if work is not None:
                            work(packet.topic, packet.payload, packet.retain or packet.duplicate)
                        self.got += 1
                        acks.append(codec.PubAckPacket(packet.packet_id).write())
            del self.buf[:pos]
            if acks:
                self.transport.write(b"".join(acks))
            if self.got >= n and not self.done.done():
                self.done.set_result(n / (time.monotonic() - self.first))

    async def main() -> float:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[float] = loop.create_future()
        transport, _ = await loop.create_connection(lambda: Receiver(done), "127.0.0.1", port)
        rate = await asyncio.wait_for(done, 600)
        transport.write(codec.DisconnectPacket().write())
        transport.close()
        return rate

    return asyncio.run(main())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=60_000)
    ap.add_argument("--gateways", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3, help="each path this often, interleaved")
    args = ap.parse_args()
    per_gateway = max(1, args.messages // args.gateways)
    n = per_gateway * args.gateways
    runs: dict[str, tuple[Callable[[int, str, int, Work | None], float], bool]] = {
        "paho": (paho_drain, False),
        "ingest": (ingest_drain, False),
        "mqtt5": (mqtt5_drain, False),
        "paho+work": (paho_drain, True),
        "mqtt5+work": (mqtt5_drain, True),
    }
    results: dict[str, Any] = {"messages": n}
    with tempfile.TemporaryDirectory(prefix="receive-paths-") as tmp:
        broker = Mosquitto(Path(tmp) / "mosquitto")
        broker.start()
        try:
            for r in range(args.rounds):
                for name, (drain, with_work) in runs.items():
                    cid = f"paths-{name}-{r}"
                    session(broker, cid, "learnroom/v1/#")
                    publish(broker.port, args.gateways, per_gateway)
                    work = ingest_work() if with_work else None
                    rate = drain(broker.port, cid, n, work)
                    session(broker, cid, None)
                    results.setdefault(f"{name}_rounds", []).append(round(rate))
                    print(f"round {r} {name:12} {rate:10.0f} messages/s", flush=True)
            # the least disturbed round of each: others' load on a shared machine only slows
            for name in runs:
                results[f"{name}_messages_per_s"] = max(results[f"{name}_rounds"])
        finally:
            broker.stop()
    paho = results["paho_messages_per_s"]
    for name in runs:
        results[f"{name}_vs_paho"] = results[f"{name}_messages_per_s"] / paho
    print(json.dumps(results, indent=2))
    out = ROOT / "bench" / "results" / "receive_paths.json"
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
