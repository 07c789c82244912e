"""Writers that put line protocol into InfluxDB, losing nothing valid.

``InfluxV1Writer`` speaks the v1 ``/write`` endpoint (InfluxDB 1.x, and the compatibility
API of 2.x/3.x); ``InfluxV2Writer`` speaks ``/api/v2/write`` through ``influxdb-client``
(InfluxDB 2.x, 3.x, Cloud, and VictoriaMetrics). Both send gzip bodies at millisecond precision
and share one contract (``_BisectingWriter``):

- a write either stores lines or raises: nothing is ever reported as refused unless it is
  proven bad on its own, because the ingest acknowledges (and so gives up) what it is told;
- transport errors, answers that are not HTTP or are cut short, 5xx, 408 and 429 are retried
  with capped, jittered backoff, then ``WriterUnavailableError``;
- a status that refuses the request itself (401, 403, 404, 413, redirects, any other 4xx) and a
  400/422 whose words blame the server and not the lines (wrong database, HTTP sent to an HTTPS
  server, series limit) raise ``BadRequestError`` at once: splitting cannot help;
- any other 400 (and 422 for a 2.x type conflict) splits the batch in halves until each bad line
  stands alone, and a line is rejected with the server's reason only if, in the same write,
  other lines were stored: if every line fails, a line stored earlier is sent again as a
  control, and if there is none or it fails too, the server is at fault (``BadRequestError``).

Re-sending good lines is harmless: a point with the same measurement, tags and time overwrites
itself (DESIGN.md "Flow").
"""

from __future__ import annotations

import gzip
import http.client
import logging
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypedDict, Unpack

import urllib3.exceptions

from gateway.central.config import InfluxSection
from gateway.errors import LearnroomError

if TYPE_CHECKING:
    from influxdb_client.rest import ApiException

_LOGGER = logging.getLogger(__name__)

#: Statuses worth another attempt: the server is busy, failing or asks us to come back.
_RETRIED = frozenset({408, 429})
#: Words of a 400/422 that refuse the whole request, whatever the lines (InfluxDB 1.x and 2.x,
#: and Go's own answer to plain HTTP on a TLS port): the batch is held, never split.
_WHOLE_BATCH = (
    "http request to an https server",
    "database not found",
    "bucket not found",
    "retention policy not found",
    "max-series-per-database",
    "max-values-per-tag",
    "authoriz",
    "unauthori",
    "authenticat",
    "too large",
)


def blames_the_server(text: str) -> bool:
    """True if InfluxDB's words refuse the request for a reason that is not the lines'."""
    lowered = text.lower()
    return any(marker in lowered for marker in _WHOLE_BATCH)


class WriterUnavailableError(LearnroomError, ConnectionError):
    """The database did not take the batch after every retry: keep it and try later."""

    reason = "unreachable"


class BadRequestError(LearnroomError, ValueError):
    """InfluxDB refused the request itself (wrong database, credentials, TLS, a limit), not
    the data: keep the batch and try later, an operator has to act."""

    reason = "refused"


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
        #: The last line the database stored: the control that tells bad lines from a bad server.
        self._control: str | None = None
        #: Monotonic time by which the current attempt or backoff must be over (None: idle), so
        #: that a supervisor can tell a writer that waits from one that is stuck.
        self.deadline: float | None = None

    @abstractmethod
    def _send(self, lines: list[str]) -> tuple[int, str]:
        """One attempt: the HTTP status and the server's reason, or ``(0, error)`` if none."""

    @abstractmethod
    def close(self) -> None:
        """Release the connections the writer keeps."""

    def write(self, lines: list[str]) -> WriteResult:
        """Write ``lines``; bad ones come back in ``rejected``, the rest are stored.

        Raises ``WriterUnavailableError`` or ``BadRequestError`` when the database is not
        taking this batch: nothing of it may be given up then.
        """
        result = WriteResult()
        if not lines:
            return result
        try:
            self._write(lines, result)
            if result.rejected and not result.written:
                self._prove_the_server_takes_lines(result)
        finally:
            self.deadline = None
        return result

    def _prove_the_server_takes_lines(self, result: WriteResult) -> None:
        """Every line failed alone: that blames the lines only if a known good one passes."""
        _, reason = result.rejected[0]
        if self._control is None:
            raise BadRequestError(
                f"InfluxDB refused each of {len(result.rejected)} lines and none was stored "
                f"before to tell the lines from the server: {reason}"
            )
        status, text = self._post([self._control])
        if status >= 300:
            raise BadRequestError(
                f"InfluxDB refuses every line, even one it stored before ({status}): {text}"
            )

    def _write(self, lines: list[str], result: WriteResult) -> None:
        status, reason = self._post(lines)
        if status < 300:
            result.written += len(lines)
            # re-sent as is, it overwrites its own point with the same values
            self._control = lines[-1]
            return
        if len(lines) == 1:
            result.rejected.append((lines[0], reason))
            return
        mid = len(lines) // 2
        self._write(lines[:mid], result)
        self._write(lines[mid:], result)

    def _attempt_deadline(self) -> float:
        """How long one attempt may take: connect and a slow answer, each within the timeout."""
        return time.monotonic() + 2 * self.timeout_s + 5

    def _post(self, lines: list[str]) -> tuple[int, str]:
        """Send until the server answers 2xx or blames the lines (the status and its reason)."""
        delay = self.backoff_s
        last = ""
        for attempt in range(1, self.attempts + 1):
            self.deadline = self._attempt_deadline()
            status, text = self._send(lines)
            if 200 <= status < 300:
                return status, ""
            if status in self.bad_data_statuses and not blames_the_server(text):
                return status, text
            if 0 < status < 500 and status not in _RETRIED:
                raise BadRequestError(f"InfluxDB refused the write ({status}): {text}")
            last = f"HTTP {status}: {text}" if status else text
            if attempt < self.attempts:
                wait = self._rng.uniform(delay / 2, delay)
                self.deadline = time.monotonic() + wait + 5
                self._sleep(wait)
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
            return exc.code, _body(exc)
        # refused, reset, timed out, not HTTP at all (BadStatusLine), cut short (IncompleteRead)
        except (OSError, http.client.HTTPException) as exc:
            return 0, f"{type(exc).__name__}: {exc}"[:500]

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
        # imported here: influxdb-client costs a second and 20 MB at import, which the 1.x
        # path (and every ingest worker writing to 1.x) does not need
        from influxdb_client.client.influxdb_client import InfluxDBClient  # noqa: PLC0415
        from influxdb_client.client.write_api import SYNCHRONOUS  # noqa: PLC0415
        from influxdb_client.domain.write_precision import WritePrecision  # noqa: PLC0415
        from influxdb_client.rest import ApiException  # noqa: PLC0415

        super().__init__(**options)
        self._api_exception = ApiException
        self._precision = WritePrecision.MS
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
                write_precision=self._precision,  # type: ignore[arg-type]
            )
        except self._api_exception as exc:  # an HTTP answer other than 2xx (status 0: TLS failed)
            return int(exc.status or 0), _reason(exc)
        # refused, reset, timed out, not HTTP at all, cut short (urllib3 wraps http.client's)
        except (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException) as exc:
            return 0, f"{type(exc).__name__}: {exc}"[:500]
        return 204, ""

    def close(self) -> None:
        """Close the client's connection pool."""
        self._api.close()  # type: ignore[no-untyped-call]
        self._client.close()  # type: ignore[no-untyped-call]


def _body(exc: urllib.error.HTTPError) -> str:
    """The start of an error answer's body; one cut short says so rather than raising."""
    try:
        return exc.read().decode(errors="replace")[:500]
    except (OSError, http.client.HTTPException) as err:
        return f"{exc.reason} (answer cut short: {type(err).__name__})"


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
