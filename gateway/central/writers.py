"""Writers that put line protocol into InfluxDB, losing nothing valid.

``InfluxV1Writer`` speaks the v1 ``/write`` endpoint (InfluxDB 1.x, and the compatibility
API of 2.x/3.x); ``InfluxV2Writer`` speaks ``/api/v2/write`` through ``influxdb-client``
(InfluxDB 2.x, 3.x, Cloud, and VictoriaMetrics). Both send gzip bodies at millisecond precision
and share one contract (``_BisectingWriter``): retries with capped, jittered backoff on 5xx,
timeouts and refused connections; a status that blames the data (400, and 422 for a 2.x type
conflict) splits the batch in halves until each bad line stands alone and is rejected with the
server's reason, while every good line is written. Re-sending good lines is harmless: a point
with the same measurement, tags and time overwrites itself (DESIGN.md "Flow").
"""

from __future__ import annotations

import gzip
import logging
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypedDict, Unpack

import urllib3.exceptions
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from gateway.central.config import InfluxSection
from gateway.errors import LearnroomError

_LOGGER = logging.getLogger(__name__)

#: Statuses that are the request's fault, not the data's: retrying or splitting cannot help.
_REFUSED = frozenset({401, 403, 404})


class WriterUnavailableError(LearnroomError, ConnectionError):
    """The database did not take the batch after every retry: keep it and try later."""


class BadRequestError(LearnroomError, ValueError):
    """InfluxDB refused the request itself (wrong database, credentials): not the data."""


@dataclass
class WriteResult:
    written: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (line, reason)


class Writer(Protocol):
    """What ingest and alerts need from a database, so a test can swap in its own."""

    def write(self, lines: list[str]) -> WriteResult: ...

    def close(self) -> None: ...


class RetryOptions(TypedDict, total=False):
    """The retry knobs every writer takes (defaults in ``_BisectingWriter``)."""

    timeout_s: float
    attempts: int
    backoff_s: float
    backoff_max_s: float
    sleep: Callable[[float], None]
    rng: random.Random | None


class _BisectingWriter(ABC):
    """Retries and bisection, shared so that both APIs keep exactly the same contract."""

    #: Statuses that mean "some of these lines are bad": the batch is split to find them.
    bad_data_statuses: frozenset[int] = frozenset({400})

    def __init__(
        self,
        timeout_s: float = 10.0,
        attempts: int = 5,
        backoff_s: float = 0.5,
        backoff_max_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self._sleep = sleep
        self._rng = rng or random.Random()

    @abstractmethod
    def _send(self, lines: list[str]) -> tuple[int, str]:
        """One attempt: the HTTP status and the server's reason, or ``(0, error)`` if none."""

    @abstractmethod
    def close(self) -> None:
        """Release the connections the writer keeps."""

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
        delay = self.backoff_s
        last = ""
        for attempt in range(1, self.attempts + 1):
            status, text = self._send(lines)
            if 0 < status < 300:
                return status, ""
            if status in self.bad_data_statuses:
                return status, text
            if status in _REFUSED:
                raise BadRequestError(f"InfluxDB refused the write ({status}): {text}")
            last = f"HTTP {status}: {text}" if status else text
            if attempt < self.attempts:
                self._sleep(self._rng.uniform(delay / 2, delay))
                delay = min(delay * 2, self.backoff_max_s)
        raise WriterUnavailableError(f"InfluxDB did not take {len(lines)} lines: {last}")


class InfluxV1Writer(_BisectingWriter):
    """The v1 ``/write`` endpoint over urllib: database, retention policy, user, password."""

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
        super().__init__(timeout_s, attempts, backoff_s, backoff_max_s, sleep, rng)
        params = {"db": database, "precision": "ms"}
        if retention_policy:
            params["rp"] = retention_policy
        if username:
            params["u"] = username
        if password:
            params["p"] = password
        self._endpoint = f"{url.rstrip('/')}/write?{urllib.parse.urlencode(params)}"

    def _send(self, lines: list[str]) -> tuple[int, str]:
        request = urllib.request.Request(  # noqa: S310 - configured http(s) URL
            self._endpoint,
            data=gzip.compress("\n".join(lines).encode(), compresslevel=5),
            method="POST",
            headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:  # noqa: S310
                return int(resp.status), ""
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")[:500]
        except (OSError, TimeoutError) as exc:  # refused, reset, timed out
            return 0, str(exc)

    def close(self) -> None:
        """Nothing to release: urllib opens a connection per request."""


class InfluxV2Writer(_BisectingWriter):
    """``/api/v2/write`` through influxdb-client: token, org, bucket (2.x, 3.x, Cloud)."""

    #: InfluxDB 2.x answers 422 for a field type conflict, 400 for a line it cannot parse.
    bad_data_statuses = frozenset({400, 422})

    def __init__(
        self,
        url: str,
        token: str,
        org: str,
        bucket: str,
        **options: Unpack[RetryOptions],
    ) -> None:
        super().__init__(**options)
        self.org = org
        self.bucket = bucket
        # retries=False (the client's default): our backoff is the only one, and it is counted
        self._client = InfluxDBClient(
            url=url, token=token, org=org, timeout=int(self.timeout_s * 1000), enable_gzip=True
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def _send(self, lines: list[str]) -> tuple[int, str]:
        try:
            self._api.write(
                self.bucket,
                self.org,
                lines,
                # the client declares its enum type but defines the members as plain str
                write_precision=WritePrecision.MS,  # type: ignore[arg-type]
            )
        except ApiException as exc:  # an HTTP answer other than 2xx (status 0: TLS failed)
            return int(exc.status or 0), _reason(exc)
        except (urllib3.exceptions.HTTPError, OSError) as exc:  # refused, reset, timed out
            return 0, str(exc)
        return 204, ""

    def close(self) -> None:
        """Close the client's connection pool."""
        self._api.close()  # type: ignore[no-untyped-call]
        self._client.close()  # type: ignore[no-untyped-call]


def _reason(exc: ApiException) -> str:
    """The server's own words: the JSON ``message`` of 2.x, else the body or HTTP reason."""
    message = exc.message
    text = message.decode(errors="replace") if isinstance(message, bytes) else str(message)
    return text[:500]


def writer_from_config(influx: InfluxSection, **options: Unpack[RetryOptions]) -> Writer:
    """The writer an ``[influx]`` section names: org and bucket mean 2.x/3.x, else 1.x."""
    options.setdefault("timeout_s", influx.timeout_s)
    options.setdefault("attempts", influx.attempts)
    if influx.org and influx.bucket:  # the section's validator has made sure of the token
        return InfluxV2Writer(influx.url, influx.token or "", influx.org, influx.bucket, **options)
    return InfluxV1Writer(
        influx.url,
        influx.db,
        retention_policy=influx.retention_policy,
        username=influx.username,
        password=influx.password,
        **options,
    )
