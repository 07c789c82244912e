"""A subscriber that records everything, for asserting what a user of the broker would see."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool

    @property
    def json(self) -> Any:
        return json.loads(self.payload)


class Collector:
    """paho subscriber on its own thread; a persistent session survives broker restarts."""

    def __init__(
        self, port: int, topic: str = "learnroom/v1/#", *, persistent: bool = False
    ) -> None:
        self.topic = topic
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        # MQTT 5 with retain-as-published, so the test sees the retain flag the agent set
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-collector-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.persistent = persistent
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self._subscribed = threading.Event()
        self.client.reconnect_delay_set(1, 1)
        self.port = port

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe(self.topic, options=SubscribeOptions(qos=1, retainAsPublished=True))

    def _on_subscribe(self, *_: Any) -> None:
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain)))
            self._cond.notify_all()

    def __enter__(self) -> Collector:

        props = Properties(PacketTypes.CONNECT)
        if self.persistent:
            props.SessionExpiryInterval = 3600
        self.client.connect(
            "127.0.0.1", self.port, clean_start=not self.persistent, properties=props
        )
        self.client.loop_start()
        self.wait_subscribed()
        return self

    def wait_subscribed(self, timeout: float = 10) -> None:
        """Until the broker acknowledged the subscription: nothing after this is missed."""
        if not self._subscribed.wait(timeout):
            raise TimeoutError("collector's subscription was not acknowledged")

    def __exit__(self, *exc: object) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def wait_for(
        self, pred: Callable[[list[Received]], bool], timeout: float = 30, what: str = "messages"
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(m.topic, m.payload[:120]) for m in self.messages[-10:]]
                    raise AssertionError(f"timed out waiting for {what}; last seen: {seen}")
                self._cond.wait(left)
            return list(self.messages)

    def snapshot(self) -> list[Received]:
        with self._cond:
            return list(self.messages)


def retained(port: int, topic: str, timeout: float = 2.0) -> dict[str, Received]:
    """What a subscriber starting now gets as retained state."""
    got: dict[str, Received] = {}
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"peek-{uuid.uuid4().hex[:8]}")

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.retain:
            got[msg.topic] = Received(msg.topic, bytes(msg.payload), True)

    def on_connect(c: mqtt.Client, *_: Any) -> None:
        c.subscribe(topic, qos=1)

    client.on_message = on_message
    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    done.wait(timeout)
    client.loop_stop()
    client.disconnect()
    return got
