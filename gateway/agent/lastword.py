"""The last word: an agent that stops for any reason but a clean stop says offline itself.

Why: aiomqtt ends every session with a clean DISCONNECT, whatever ended it, and a clean
DISCONNECT tells the broker to throw the Last Will away. An agent leaving on an error would
leave its retained status at ``online: true`` for good. So when a session ends by anything
but a dropped connection or a clean stop (a fatal outbox error, a task that raised, a
cancellation nobody asked for), the link publishes the Will's payload itself, retained, QoS 1,
before the client closes. A process that dies without running Python code (SIGKILL, SIGABRT
from systemd's watchdog, a crash of the interpreter) closes its socket without a DISCONNECT,
and the broker publishes the Will: either way the room ends up offline.
"""

from __future__ import annotations

import asyncio
import logging

import aiomqtt

_LOGGER = logging.getLogger(__name__)

#: Seconds the last word may take; the agent is on its way out.
TIMEOUT_S = 3.0


async def say_offline(client: aiomqtt.Client, topic: str, payload: bytes, why: str) -> bool:
    """Publish the Will's payload as a retained status; False if the broker did not take it."""
    publish = asyncio.ensure_future(
        client.publish(topic, payload, qos=1, retain=True, timeout=TIMEOUT_S)
    )
    failed: BaseException | None = None
    try:
        # shielded: the task that says it is usually being cancelled already
        await asyncio.wait_for(asyncio.shield(publish), TIMEOUT_S)
    except (aiomqtt.MqttError, TimeoutError, asyncio.CancelledError) as exc:
        publish.cancel()
        failed = exc
    if failed is not None:
        _LOGGER.error("leaving (%s); could not say offline (%r): the Last Will must", why, failed)
        return False
    _LOGGER.error("leaving (%s); said offline (retained status) before closing", why)
    return True
