"""A broker on loopback that misbehaves on purpose, the way real brokers and networks do.

It speaks just enough MQTT 3.1.1 and 5 for a client to get through CONNECT: a CONNACK with the
return (3.1.1) or reason (5) code a test chooses, then, if accepted, the connection stays up
for ``close_after_s`` (answering PINGREQ, and PUBLISH only if ``puback``) and ends with a
DISCONNECT carrying ``disconnect_reason`` (MQTT 5) or by simply closing the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

_CONNECT, _PUBLISH, _PINGREQ, _DISCONNECT = 1, 3, 12, 14


@dataclass(frozen=True)
class Connect:
    at: float
    client_id: str
    #: 4 for MQTT 3.1.1, 5 for MQTT 5.
    level: int


@dataclass
class FakeBroker:
    connack: int = 0
    #: Seconds an accepted connection stays up; ``None``: until the client leaves.
    close_after_s: float | None = None
    #: MQTT 5 only: send a DISCONNECT with this reason before closing.
    disconnect_reason: int | None = None
    puback: bool = False
    connects: list[Connect] = field(default_factory=list)
    port: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Server | None = None

    async def __aenter__(self) -> FakeBroker:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 5)

    async def wait_connects(self, n: int, timeout: float = 20.0) -> list[Connect]:
        """Until ``n`` CONNECTs have arrived."""
        async with asyncio.timeout(timeout):
            while len(self.connects) < n:
                self._changed.clear()
                await self._changed.wait()
        return self.connects

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            kind, _, body = await _read_packet(reader)
            if kind != _CONNECT:
                return
            level, client_id = _parse_connect(body)
            self.connects.append(Connect(asyncio.get_running_loop().time(), client_id, level))
            self._changed.set()
            tail = b"\x00" if level == 5 else b""  # MQTT 5: an empty property list
            writer.write(bytes([0x20, 2 + len(tail), 0, self.connack]) + tail)
            await writer.drain()
            if self.connack != 0:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.close_after_s):
                    await self._converse(reader, writer)
            if self.disconnect_reason is not None and level == 5:
                writer.write(bytes([0xE0, 2, self.disconnect_reason, 0]))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            kind, flags, body = await _read_packet(reader)
            if kind == _DISCONNECT:
                return
            if kind == _PINGREQ:
                writer.write(b"\xd0\x00")
            elif kind == _PUBLISH and (flags >> 1) & 3 and self.puback:
                topic_len = int.from_bytes(body[:2])
                mid = body[2 + topic_len : 4 + topic_len]
                writer.write(b"\x40\x02" + mid)
            await writer.drain()


async def _read_packet(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    first = (await reader.readexactly(1))[0]
    length, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return first >> 4, first & 0x0F, await reader.readexactly(length)


def _parse_connect(body: bytes) -> tuple[int, str]:
    name_len = int.from_bytes(body[:2])
    pos = 2 + name_len
    level = body[pos]
    pos += 4  # level, flags, keepalive
    if level == 5:
        props, shift = 0, 0
        while True:
            byte = body[pos]
            pos += 1
            props |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        pos += props
    id_len = int.from_bytes(body[pos : pos + 2])
    return level, body[pos + 2 : pos + 2 + id_len].decode()
