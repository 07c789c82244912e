"""The v2 writer against a real VictoriaMetrics, which takes influxdb-client's /api/v2/write.

No InfluxDB 2.x is packaged for Debian; VictoriaMetrics is, and it speaks the same write API.
It stores each field as a series named ``<measurement>_<field>`` and keeps numbers only, so the
expectations below are written in its terms. It never answers 400 or 422 (see
``test_a_malformed_line_is_skipped_by_victoriametrics_not_refused``), so the bisection of the v2
writer is checked against a small HTTP server that answers as InfluxDB 2.x does.
"""

from __future__ import annotations

import gzip
import http.server
import json
import shutil
import threading
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.central.config import InfluxSection, parse_influx_url
from gateway.central.mapping import to_lines
from gateway.central.writers import (
    BadRequestError,
    InfluxV1Writer,
    InfluxV2Writer,
    Writer,
    WriterUnavailableError,
    writer_from_config,
)
from gateway.launch.broker import free_port
from gateway.launch.victoria import VictoriaMetrics
from gateway.models import (
    AnyData,
    EnvironmentData,
    EventData,
    HealthData,
    LockerData,
    OccupancyData,
    SlotState,
    WifiData,
    make_envelope,
)
from tests.central.ingest.odd_influx import OddInflux

SITE = "stadtbib"
ROOM = "lesesaal-2"
SSID = "Bibliothek Café, Gäste=frei"  # a space, a comma, an equals sign, non-ASCII: escaped
LOCKER = "tablets-sued"  # locker and slot ids are slugs (DESIGN.md "Compatibility")
SLOT = "3-oben"
BORROWER = "0123456789abcdef0123456789abcdef"
TOKEN = "any-token"  # noqa: S105 - VictoriaMetrics takes any token unless told otherwise
#: Five minutes ago, on a whole millisecond that is not a whole second: inside the retention
#: period, and any rounding to seconds or microseconds would show.
T0 = (int(time.time()) - 300) * 1000 + 123
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def at(offset_ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=T0 + offset_ms)


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    if shutil.which("victoria-metrics") is None:
        pytest.fail(
            "victoria-metrics is required and is not installed; run scripts/test "
            "(it installs the Debian package 'victoria-metrics')"
        )
    server = VictoriaMetrics(tmp_path / "victoria")
    server.start()
    yield server
    server.stop()


def v2(server: VictoriaMetrics, **kw: Any) -> InfluxV2Writer:
    return InfluxV2Writer(server.url, TOKEN, "learnroom", "learnroom", **kw)


def every_kind() -> list[str]:
    envelopes: list[tuple[AnyData, str | None]] = [
        (OccupancyData(people=12, occupied=True, seats_total=40, seats_free=28), None),
        (EnvironmentData(co2_ppm=1234.5, temperature_c=21.25, humidity_pct=45.0), None),
        (
            WifiData(ssid=SSID, bssid="aa:bb:cc:dd:ee:ff", rssi_dbm=-61.5, loss_pct=0.5, ok=False),
            None,
        ),
        (HealthData(uptime_s=3600.5, outbox_depth=3, outbox_dropped=0), None),
        (LockerData(door_open=False, slots=[SlotState(slot=SLOT, present=True)]), LOCKER),
        (EventData(type="checkout", locker=LOCKER, slot=SLOT, borrower=BORROWER), None),
    ]
    lines: list[str] = []
    for i, (data, sub) in enumerate(envelopes):
        lines += to_lines(make_envelope(SITE, ROOM, data, at(i), i), sub)
    return lines


def as_table(series: list[dict[str, Any]]) -> dict[tuple[str, frozenset[tuple[str, str]]], list]:
    """{(metric name, other labels): [(value, time in ms), ...]}."""
    table = {}
    for s in series:
        labels = dict(s["metric"])
        name = labels.pop("__name__")
        table[name, frozenset(labels.items())] = list(
            zip(s["values"], s["timestamps"], strict=True)
        )
    return table


def expected_every_kind() -> dict[tuple[str, frozenset[tuple[str, str]]], list]:
    room = {"site": SITE, "room": ROOM}
    wifi = room | {"ssid": SSID}
    door = room | {"locker": LOCKER}
    slot = door | {"slot": SLOT}
    event = slot | {"type": "checkout"}
    rows: list[tuple[str, dict[str, str], float, int]] = [
        ("occupancy_people", room, 12, 0),
        ("occupancy_occupied", room, 1, 0),  # booleans become 1 and 0
        ("occupancy_seats_total", room, 40, 0),
        ("occupancy_seats_free", room, 28, 0),
        ("environment_co2_ppm", room, 1234.5, 1),
        ("environment_temperature_c", room, 21.25, 1),
        ("environment_humidity_pct", room, 45, 1),
        ("wifi_rssi_dbm", wifi, -61.5, 2),
        ("wifi_loss_pct", wifi, 0.5, 2),
        ("wifi_ok", wifi, 0, 2),
        ("wifi_bssid", wifi, 0, 2),  # VictoriaMetrics keeps numbers only: a text becomes 0
        ("gateway_uptime_s", room, 3600.5, 3),
        ("gateway_outbox_depth", room, 3, 3),
        ("gateway_outbox_dropped", room, 0, 3),
        ("locker_door_open", door, 0, 4),
        ("locker_slot_present", slot, 1, 4),
        ("locker_event_count", event, 1, 5),
    ]
    return {(n, frozenset(labels.items())): [(v, T0 + dt)] for n, labels, v, dt in rows}


def test_every_kind_lands_with_its_names_tags_values_and_milliseconds(victoria):
    lines = every_kind()
    writer = v2(victoria)
    try:
        result = writer.write(lines)
    finally:
        writer.close()
    assert (result.written, result.rejected) == (len(lines), [])
    expected = expected_every_kind()
    got = as_table(victoria.export(f'{{site="{SITE}"}}', min_samples=len(expected)))
    assert got == expected
    assert BORROWER not in json.dumps(victoria.export('{__name__=~".+"}')), "never the borrower"


def test_a_malformed_line_is_skipped_by_victoriametrics_not_refused(victoria):
    # Found by experiment (VictoriaMetrics 1.79, Debian): a batch with lines it cannot parse
    # is answered 204, not 400. The good lines are stored, each bad one is dropped and named
    # only in the server's own log ('cannot unmarshal InfluxDB line "...": ...; skipping it').
    # So the writer cannot see them: it counts the whole batch as written. Against
    # VictoriaMetrics, ingest's validation before the write is what keeps bad data out.
    good = every_kind()
    garbage = "this is not line protocol"
    bad_time = f"occupancy,room={ROOM},site={SITE} people=5i not-a-time"
    result = v2(victoria).write([*good[:3], garbage, *good[3:10], bad_time, *good[10:]])
    assert result.written == len(good) + 2
    assert result.rejected == []
    expected = expected_every_kind()
    got = as_table(victoria.export(f'{{site="{SITE}"}}', min_samples=len(expected)))
    assert got == expected, "the good lines around the bad ones are all stored, nothing else"
    log = victoria.log_tail()
    assert f'"{garbage}"' in log
    assert "not-a-time" in log
    assert "skipping it" in log


def test_server_down_is_retried_then_said_and_the_same_batch_lands_after_restart(victoria):
    waits: list[float] = []
    lines = every_kind()
    writer = v2(victoria, attempts=4, backoff_s=1, backoff_max_s=3, sleep=waits.append)
    victoria.stop()
    with pytest.raises(WriterUnavailableError, match=f"did not take {len(lines)} lines"):
        writer.write(lines)
    assert len(waits) == 3, "four attempts, three waits between them"
    # each wait is jittered down to half of a delay that doubles up to the cap
    for wait, (low, high) in zip(waits, [(0.5, 1), (1, 2), (1.5, 3)], strict=True):
        assert low <= wait <= high
    victoria.start()
    assert writer.write(lines).written == len(lines), "the same writer resumes by itself"
    expected = expected_every_kind()
    assert as_table(victoria.export(f'{{site="{SITE}"}}', min_samples=len(expected))) == expected


def test_a_refused_token_is_said_at_once_not_retried(tmp_path: Path):
    if shutil.which("victoria-metrics") is None:
        pytest.fail("victoria-metrics is required; run scripts/test")
    server = VictoriaMetrics(
        tmp_path / "vm", flags=["-httpAuth.username=learnroom", "-httpAuth.password=secret"]
    )
    server.start()
    waits: list[float] = []
    try:
        with pytest.raises(BadRequestError, match="401"):
            v2(server, sleep=waits.append).write(every_kind())
    finally:
        server.stop()
    assert waits == []


class InfluxV2Stub(http.server.ThreadingHTTPServer):
    """Answers /api/v2/write as InfluxDB 2.x does: 422 for a type conflict, 400 for garbage."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _StubHandler)
        self.requests: list[tuple[str, dict[str, str], list[str]]] = []
        self.stored: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _StubHandler(http.server.BaseHTTPRequestHandler):
    server: InfluxV2Stub

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        lines = body.decode().split("\n")
        self.server.requests.append((self.path, dict(self.headers), lines))
        if any("conflict" in line for line in lines):
            status, message = 422, "failure writing points to database: field type conflict"
        elif any(line.startswith("garbage") for line in lines):
            status, message = 400, "unable to parse 'garbage': missing fields"
        else:
            self.server.stored += lines
            self.send_response(204)
            self.end_headers()
            return
        data = json.dumps({"code": "invalid", "message": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[InfluxV2Stub]:
    server = InfluxV2Stub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_422_and_400_isolate_each_bad_line_and_store_every_good_one(stub: InfluxV2Stub):
    good = every_kind()
    conflict = f"occupancy,room={ROOM},site={SITE},conflict=1 people=1.5 {T0}"
    garbage = "garbage"
    batch = [*good[:5], conflict, *good[5:12], garbage, *good[12:]]
    result = InfluxV2Writer(stub.url, "s3cret", "the org", "learnroom").write(batch)
    assert result.written == len(good)
    reasons = dict(result.rejected)
    assert set(reasons) == {conflict, garbage}
    assert "field type conflict" in reasons[conflict]
    assert "unable to parse" in reasons[garbage]
    assert sorted(set(stub.stored)) == sorted(good)
    path, headers, _ = stub.requests[0]
    url = urllib.parse.urlsplit(path)
    assert url.path == "/api/v2/write"
    query = urllib.parse.parse_qs(url.query)
    assert query == {"org": ["the org"], "bucket": ["learnroom"], "precision": ["ms"]}
    assert headers["Authorization"] == "Token s3cret"
    assert headers["Content-Encoding"] == "gzip"


def writer_from_url(
    url: str, *, token: str | None, username: str | None, password: str | None, **options: Any
) -> Writer:
    """As the CLI does for ``--influx``."""
    env = {"LEARNROOM_INFLUX_TOKEN": token} if token else {}
    return writer_from_config(parse_influx_url(url, None, env), **options)


def test_urls_with_db_make_a_v1_writer_and_with_org_and_bucket_a_v2_writer(victoria):
    lines = every_kind()
    v1 = writer_from_url(
        f"{victoria.url}?db=learnroom&rp=autogen", token=None, username=None, password=None
    )
    assert isinstance(v1, InfluxV1Writer)
    assert v1.write(lines).written == len(lines)
    url = f"{victoria.url}?org=learnroom&bucket=learnroom"
    v2_writer = writer_from_url(url, token=TOKEN, username=None, password=None, attempts=2)
    assert isinstance(v2_writer, InfluxV2Writer)
    assert (v2_writer.org, v2_writer.bucket, v2_writer.attempts) == ("learnroom", "learnroom", 2)
    assert v2_writer.write(lines).written == len(lines)
    v2_writer.close()
    v1.close()
    expected = expected_every_kind()
    got = victoria.export(f'{{site="{SITE}"}}', min_samples=2 * len(expected))
    # VictoriaMetrics labels what came through v1 /write with its database
    assert {s["metric"].get("db") for s in got} == {"learnroom", None}
    assert sum(len(s["values"]) for s in got) == 2 * len(expected)


def test_the_factories_pass_retry_options_through():
    waits: list[float] = []
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    writer = writer_from_url(
        f"{url}?org=o&bucket=b", token=TOKEN, username=None, password=None, sleep=waits.append
    )
    with pytest.raises(WriterUnavailableError):
        writer.write(["m f=1 1"])
    assert len(waits) == 4, "five attempts by default"
    waits.clear()
    section = InfluxSection(url=url, org="o", bucket="b", token=TOKEN, attempts=2)
    writer = writer_from_config(section, sleep=waits.append)
    assert isinstance(writer, InfluxV2Writer)
    with pytest.raises(WriterUnavailableError):
        writer.write(["m f=1 1"])
    assert len(waits) == 1, "the section's attempts"


@pytest.mark.parametrize(
    ("url", "token", "says"),
    [
        ("http://influx:8086", "t", "expected http(s)://host:port?db=DATABASE"),
        ("http://influx:8086?db=a&org=o&bucket=b", "t", "?org=ORG&bucket=BUCKET"),
        ("http://influx:8086?org=o", "t", "?org=ORG&bucket=BUCKET"),
        ("http://influx:8086?database=learnroom", None, "bad parameter 'database'"),
        ("http://influx:8086?db=", None, "bad parameter 'db'"),
        ("http://influx:8086?db=a&db=b", None, "bad parameter 'db'"),
        ("influx:8086?db=learnroom", None, "expected http(s)://"),
        ("mqtt://influx:8086?db=learnroom", None, "expected http(s)://"),
        ("http://u:p@influx:8086?db=learnroom", None, "credentials do not go into the URL"),
        ("http://influx:8086?org=o&bucket=b", None, "needs a token (LEARNROOM_INFLUX_TOKEN)"),
    ],
)
def test_a_bad_influx_url_is_refused_saying_what_is_expected(url, token, says):
    with pytest.raises(ValueError, match=r"--influx") as info:
        writer_from_url(url, token=token, username=None, password=None)
    assert says in str(info.value)
    assert url in str(info.value)


@pytest.mark.parametrize("mode", ["garbage", "truncated500"])
def test_v2_an_answer_that_is_not_http_or_is_cut_short_is_retried_then_unavailable(mode):
    waits: list[float] = []
    with OddInflux(mode=mode) as odd:
        writer = InfluxV2Writer(odd.url, TOKEN, "o", "b", attempts=3, sleep=waits.append)
        with pytest.raises(WriterUnavailableError, match="did not take"):
            writer.write(every_kind())
        writer.close()
    assert len(waits) == 2


@pytest.mark.parametrize(("mode", "says"), [("https", "HTTPS server"), ("series", "max-series")])
def test_v2_a_400_for_the_whole_request_is_held_not_split(mode, says):
    with OddInflux(mode=mode) as odd, pytest.raises(BadRequestError, match=says):
        InfluxV2Writer(odd.url, TOKEN, "o", "b", sleep=lambda _: None).write(every_kind())
    assert odd.requests == 1


def test_v2_lines_all_refused_with_nothing_stored_before_are_held(stub: InfluxV2Stub):
    writer = InfluxV2Writer(stub.url, TOKEN, "o", "b")
    with pytest.raises(BadRequestError, match="none was stored before"):
        writer.write(["garbage 1", "garbage 2"])
    assert writer.write([*every_kind(), "garbage 3"]).rejected[0][0] == "garbage 3"
