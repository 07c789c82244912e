"""Writers that put line protocol into InfluxDB, losing nothing valid.

``InfluxV1Writer`` speaks the v1 ``/write`` endpoint (InfluxDB 1.x, and the compatibility
API of 2.x/3.x): gzip bodies, millisecond precision, retries with capped, jittered backoff on
5xx, timeouts and refused connections. A 400 means some lines are bad: the batch is split in
halves until each bad line stands alone and is rejected with InfluxDB's reason, while every
good line is written. Re-sending good lines is harmless: a point with the same measurement,
tags and time overwrites itself (DESIGN.md "Flow").
"""

from __future__ import annotations

import gzip
import logging
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.errors import LearnroomError

_LOGGER = logging.getLogger(__name__)


class WriterUnavailableError(LearnroomError, ConnectionError):
    """The database did not take the batch after every retry: keep it and try later."""


class BadRequestError(LearnroomError, ValueError):
    """InfluxDB refused the request itself (wrong database, credentials): not the data."""


@dataclass
class WriteResult:
    written: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (line, reason)


class InfluxV1Writer:
    def __init__(
        self,
        url: str,
        database: str,
        *,
        retention_policy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
        attempts: int = 5,
        backoff_s: float = 0.5,
        backoff_max_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        params = {"db": database, "precision": "ms"}
        if retention_policy:
            params["rp"] = retention_policy
        if username:
            params["u"] = username
        if password:
            params["p"] = password
        self._endpoint = f"{url.rstrip('/')}/write?{urllib.parse.urlencode(params)}"
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self._sleep = sleep
        self._rng = rng or random.Random()

    def write(self, lines: list[str]) -> WriteResult:
        """Write ``lines``; bad ones come back in ``rejected``, the rest are stored."""
        result = WriteResult()
        if lines:
            self._write(lines, result)
        return result

    def _write(self, lines: list[str], result: WriteResult) -> None:
        status, reason = self._post(lines)
        if status < 300:
            result.written += len(lines)
            return
        if len(lines) == 1:
            result.rejected.append((lines[0], reason))
            return
        mid = len(lines) // 2
        self._write(lines[:mid], result)
        self._write(lines[mid:], result)

    def _post(self, lines: list[str]) -> tuple[int, str]:
        body = gzip.compress("\n".join(lines).encode(), compresslevel=5)
        delay = self.backoff_s
        last = ""
        for attempt in range(1, self.attempts + 1):
            request = urllib.request.Request(  # noqa: S310 - configured http(s) URL
                self._endpoint,
                data=body,
                method="POST",
                headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:  # noqa: S310
                    return int(resp.status), ""
            except urllib.error.HTTPError as exc:
                text = exc.read().decode(errors="replace")[:500]
                if exc.code == 400:
                    return 400, text
                if exc.code in (401, 403, 404):
                    raise BadRequestError(
                        f"InfluxDB refused the write ({exc.code}): {text}"
                    ) from exc
                last = f"HTTP {exc.code}: {text}"
            except (OSError, TimeoutError) as exc:  # refused, reset, timed out
                last = str(exc)
            if attempt < self.attempts:
                self._sleep(self._rng.uniform(delay / 2, delay))
                delay = min(delay * 2, self.backoff_max_s)
        raise WriterUnavailableError(f"InfluxDB did not take {len(lines)} lines: {last}")
