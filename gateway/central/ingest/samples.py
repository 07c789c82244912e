"""A sample of what the ingest refused, for the people who have to find out why."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

_LOGGER = logging.getLogger(__name__)


class RejectSampler:
    """A few refused messages per minute in a JSON-lines file, rotated at ``max_bytes``: enough
    to see what a broken sender sends, never enough to fill the disk."""

    def __init__(self, path: Path | None, per_minute: int, max_bytes: int = 1_000_000) -> None:
        self.path = path
        self.per_minute = per_minute
        self.max_bytes = max_bytes
        self._window = 0
        self._count = 0
        self._lock = threading.Lock()

    def sample(self, reason: str, detail: str, topic: str, payload: bytes | bytearray) -> None:
        if self.path is None or self.per_minute == 0:
            return
        now = time.time()
        with self._lock:
            window = int(now // 60)
            if window != self._window:
                self._window, self._count = window, 0
            if self._count >= self.per_minute:
                return
            self._count += 1
            record = {
                "time": round(now, 3),
                "reason": reason,
                "detail": detail,
                "topic": topic[:300],
                "payload": payload[:1024].decode("utf-8", errors="replace"),
            }
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if self.path.exists() and self.path.stat().st_size > self.max_bytes:
                    self.path.replace(self.path.with_name(self.path.name + ".1"))
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            except OSError as exc:
                _LOGGER.warning("cannot write rejected sample to %s: %s", self.path, exc)
