"""aiomqtt's ``Client`` with two races of a dropped connection closed at their source.

aiomqtt 2.5 writes two ERROR lines on a dropped connection that say nothing the link does not
already say once (``link.py``), and the first can do harm:

- **"Exception in callback ... add_writer ... Bad file descriptor"**: paho asks for a write
  callback from its own thread; aiomqtt schedules ``loop.add_writer(sock.fileno(), ...)`` for
  later with the number taken *now*. When the socket closes before that runs, the selector
  refuses the dead number; had the number been reused by a new file meanwhile (the outbox's
  database, the next connection), the writer would be put on the wrong file. Here the number
  is read when the callback runs, and a closed socket (``fileno() == -1``) registers nothing.
- **"Future exception was never retrieved"** (``MqttCodeError 'Unexpected disconnection'``):
  paho's disconnect callback stores the drop in aiomqtt's ``_disconnected`` future, and
  ``__aexit__`` returns early on a done future without reading it, so asyncio complains when
  it is collected. The drop has already reached us as the error that ended the session (a
  failed publish, the message iterator), so ``__aexit__`` reads it here; nothing else is
  silenced, and any other unretrieved error is still logged.

Both override private methods of aiomqtt; ``pyproject.toml`` pins aiomqtt below 3, and
``tests/agent/test_mqttclient.py`` checks both against a broker that is killed mid-publish.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt


class Client(aiomqtt.Client):
    def _on_socket_register_write(
        self,
        client: mqtt.Client,
        userdata: Any,  # noqa: ANN401 - paho's callback signature
        sock: Any,  # noqa: ANN401 - paho's socket type (plain, TLS or WebSocket)
    ) -> None:
        def callback() -> None:
            # as aiomqtt's: a failed write is a broken connection
            try:
                client.loop_write()
            except Exception as exc:  # noqa: BLE001 - handed on as the disconnect reason
                if not self._disconnected.done():
                    self._disconnected.set_exception(exc)

        def register() -> None:
            fileno = sock.fileno()
            if fileno != -1:  # closed meanwhile: nothing to write to
                self._loop.add_writer(fileno, callback)

        self._loop.call_soon_threadsafe(register)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        done = self._disconnected
        if done.done() and not done.cancelled():
            done.exception()  # the drop, already raised to the session as its end
        await super().__aexit__(exc_type, exc, tb)


__all__ = ["Client"]
