"""Badge readers and pseudonyms: the clear badge ID never leaves this module's caller.

A pseudonym is HMAC-SHA256(site secret, badge ID), hex, cut to 128 bits. The key makes it
useless to anyone without the site secret (a plain hash of a short card number could be
reversed by trying them all); 128 bits keep collisions out of reach for any library's
patrons while the payloads stay short.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sys
from typing import Any, Protocol

PSEUDONYM_HEX_CHARS = 32


def pseudonymise(badge_id: str, secret: bytes) -> str:
    normalised = badge_id.strip().upper().encode()
    return hmac.new(secret, normalised, hashlib.sha256).hexdigest()[:PSEUDONYM_HEX_CHARS]


def pseudonym_for(badge_id: str, secret: bytes) -> str:
    """For ``learnroom pseudonym``: lets the allow list hold pseudonyms, never badge IDs."""
    return pseudonymise(badge_id, secret)


class BadgeReader(Protocol):
    async def read(self) -> str:
        """The next badge ID, as the reader typed it."""
        ...


class QueueBadgeReader:
    """Badges put by the simulation or a test."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue()

    async def read(self) -> str:
        return await self.queue.get()


class StdinBadgeReader:
    """One badge per line on standard input (simulation by hand, a reader in a terminal)."""

    async def read(self) -> str:
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                await asyncio.Event().wait()  # stdin closed: no more badges, ever
            if line.strip():
                return str(line).strip()


#: evdev key names of the characters badge readers type
_KEYS = {f"KEY_{c}": c for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}


class EvdevBadgeReader:
    """A USB reader that types like a keyboard; grabbed, so its digits go nowhere else."""

    def __init__(self, device_path: str) -> None:
        self.device_path = device_path
        self._device: Any = None

    async def read(self) -> str:
        import evdev  # noqa: PLC0415 - only on the Pi

        if self._device is None:
            self._device = evdev.InputDevice(self.device_path)
            self._device.grab()
        chars: list[str] = []
        async for event in self._device.async_read_loop():
            if event.type != evdev.ecodes.EV_KEY or event.value != 1:  # key down only
                continue
            name = evdev.ecodes.KEY.get(event.code)
            if name in ("KEY_ENTER", "KEY_KPENTER"):
                if chars:
                    return "".join(chars)
            elif isinstance(name, str) and name in _KEYS:
                chars.append(_KEYS[name])
        raise OSError(f"{self.device_path}: badge reader went away")
