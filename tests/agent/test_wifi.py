"""Wi-Fi: parsers on outputs people published for real drivers, and the source end to end."""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import sys
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gateway.agent.config import WifiSection
from gateway.agent.sources.wifi import (
    CommandResult,
    SubprocessRunner,
    WifiSource,
    parse_default_gateway,
    parse_iw_link,
    parse_ping,
    parse_proc_wireless,
    parse_station_dump,
    urllib_http_probe,
)
from gateway.clock import ScaledClock
from gateway.models import EventData, WifiData
from gateway.sim.wifi import SimWifi, WifiConditions
from tests.paths import FIXTURES
from tests.sink import Recorder

FIX = FIXTURES / "wifi"


def fixture(name: str) -> str:
    return (FIX / name).read_text()


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# -- parsers on published outputs ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "bssid", "ssid", "freq", "signal", "tx", "rx"),
    [
        # Pi 400: no SSID line at all; None, not a guess
        ("brcmfmac_link.txt", "e0:19:54:bf:1e:fc", None, 5220, -51, 180.0, 6.0),
        ("iwlwifi_link.txt", "64:d1:54:68:93:ae", "HOME5", 5280, -44, 866.7, 702.0),
        # the reporters redacted the BSSIDs: not a MAC, so no BSSID
        ("rtl8812au_link.txt", None, "xxx", 5300, -45, 216.7, None),
        ("rtl8723bs_link.txt", None, "<SSID>", 2427, -45, 72.2, None),
        ("vwifi_link.txt", "00:76:77:30:00:00", "test", 2437, -35, 195.0, 195.0),
        # iw gave up half-way: what it printed still counts
        ("vwifi_link_unsupported.txt", "26:05:d1:60:34:c8", "MyHomeWiFi", 2437, None, None, None),
    ],
)
def test_iw_link_of_each_driver(name, bssid, ssid, freq, signal, tx, rx):
    info = parse_iw_link(fixture(name))
    assert info.connected
    assert (info.bssid, info.ssid, info.freq_mhz) == (bssid, ssid, freq)
    assert (info.signal_dbm, info.tx_bitrate_mbps, info.rx_bitrate_mbps) == (signal, tx, rx)


def test_not_connected():
    info = parse_iw_link(fixture("not_connected_link.txt"))
    assert not info.connected
    assert (info.bssid, info.ssid, info.signal_dbm) == (None, None, None)


@pytest.mark.parametrize(
    ("name", "station", "signal", "signal_avg", "tx", "rx"),
    [
        ("ath9k_station_dump.txt", "00:00:5e:00:53:02", -63, -63, 57.8, 24.0),
        ("ath10k_station_dump.txt", "00:00:5e:00:53:03", -55, -57, 6.0, 24.0),
        # the drivers' own bugs, printed as they are; the source judges them
        ("mwlwifi_station_dump.txt", "00:00:5e:00:53:01", 0, 0, 1.0, 1.0),
        ("mt76_station_get.txt", "00:00:5e:00:53:04", 75, 0, 54.0, 54.0),
        ("rtl8723bs_station_get.txt", None, -45, None, 72.2, None),
    ],
)
def test_station_dump_of_each_driver(name, station, signal, signal_avg, tx, rx):
    info = parse_station_dump(fixture(name))
    assert info.connected
    assert (info.bssid, info.signal_dbm, info.signal_avg_dbm) == (station, signal, signal_avg)
    assert (info.tx_bitrate_mbps, info.rx_bitrate_mbps) == (tx, rx)


def test_empty_station_dump_says_nothing():
    assert not parse_station_dump(fixture("rtl8723bs_station_dump.txt")).connected


def test_proc_net_wireless():
    intel = parse_proc_wireless(fixture("iwlwifi_proc_net_wireless.txt"), "wlp2s0")
    assert intel is not None
    assert (intel.link_quality, intel.level_dbm, intel.noise_dbm) == (63, -47, None)
    other = parse_proc_wireless(fixture("proc_net_wireless.txt"), "wlp5s0")
    assert other is not None
    assert (other.link_quality, other.level_dbm) == (68, -42)
    relative = parse_proc_wireless(fixture("relative_proc_net_wireless.txt"), "wlan0")
    assert relative is not None
    assert (relative.link_quality, relative.level_dbm) == (100, None), "95 is not 95 dBm"
    assert parse_proc_wireless(fixture("iwlwifi_proc_net_wireless.txt"), "wlan0") is None


def test_default_gateway_from_proc_net_route():
    route = fixture("proc_net_route.txt")
    assert parse_default_gateway(route) == "192.168.18.1"
    assert parse_default_gateway(route, "wlp4s0") == "192.168.18.1"
    assert parse_default_gateway(route, "wlan0") is None, "another port's gateway is not ours"
    assert parse_default_gateway(fixture("proc_net_route_eth0.txt"), "eth0") == "172.20.64.1"


def test_iputils_ping():
    p = parse_ping(fixture("iputils_ping.txt"))
    assert p is not None
    assert (p.transmitted, p.received, p.loss_pct) == (5, 5, 0.0)
    assert (p.latency_ms, p.jitter_ms) == (265.071, 144.667)
    assert p.rtts_ms == (44.6, 260.0, 179.0, 412.0, 430.0)


def test_iputils_ping_with_loss():
    p = parse_ping(fixture("iputils_ping_loss.txt"))
    assert p is not None
    assert (p.transmitted, p.received, p.loss_pct) == (12, 6, 50.0)
    assert (p.latency_ms, p.jitter_ms) == (5.195, 1.854)
    assert len(p.rtts_ms) == 6


def test_busybox_ping_jitter_is_computed_like_mdev():
    p = parse_ping(fixture("busybox_ping.txt"))
    assert p is not None
    assert (p.transmitted, p.received, p.loss_pct, p.latency_ms) == (2, 2, 0.0, 0.801)
    assert p.jitter_ms == pytest.approx(statistics.pstdev([1.398, 0.204]))
    p = parse_ping(fixture("busybox_ping_container.txt"))
    assert p is not None
    assert (p.received, p.latency_ms) == (3, 0.113)
    assert p.jitter_ms == pytest.approx(statistics.pstdev([0.164, 0.087, 0.088]))


@pytest.mark.parametrize(
    ("name", "sent"), [("iputils_ping_all_lost.txt", 8), ("busybox_ping_all_lost.txt", 1)]
)
def test_all_lost_ping(name, sent):
    p = parse_ping(fixture(name))
    assert p is not None
    assert (p.transmitted, p.received, p.loss_pct) == (sent, 0, 100.0)
    assert (p.latency_ms, p.jitter_ms) == (None, None)


def test_not_ping_output():
    assert parse_ping("ping: connect: Network is unreachable\n") is None


# -- the source on recorded outputs ---------------------------------------------------------
class FixtureRunner:
    """Answers commands with recorded outputs; ``None`` means 'not installed'."""

    def __init__(self, answers: dict[str, CommandResult | None]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    async def __call__(self, argv: Sequence[str], timeout: float) -> CommandResult:
        self.calls.append(list(argv))
        key = " ".join(argv[3:]) if argv[0] == "iw" else argv[0]
        answer = self.answers.get(key, self.answers.get(argv[0]))
        if answer is None:
            raise FileNotFoundError(2, "No such file or directory", argv[0])
        return answer


async def resolves(name: str) -> None:
    return None


async def portal_204(url: str, timeout: float) -> int:
    return 204


def ok(name: str, code: int = 0) -> CommandResult:
    return CommandResult(code, fixture(name))


def source(tmp_path: Path, runner: FixtureRunner, **cfg) -> WifiSource:
    return WifiSource(
        WifiSection(**cfg),
        60,
        ScaledClock(speed=6000),
        run=runner,
        resolve=resolves,
        http_probe=portal_204,
        proc_wireless=FIX / "iwlwifi_proc_net_wireless.txt",
        proc_route=FIX / "proc_net_route.txt",
    )


async def test_implausible_signals_fall_back_to_proc_net_wireless(tmp_path: Path):
    runner = FixtureRunner(
        {
            "link": ok("vwifi_link_unsupported.txt", 1),
            "station dump": ok("mt76_station_get.txt"),
            "ping": ok("iputils_ping_loss.txt", 0),
        }
    )
    data, problems = await source(
        tmp_path, runner, interface="wlp2s0", ping_host="192.0.2.1"
    ).sample()
    # +75 dBm is dropped with a fault, 0 dBm is "not measured", /proc/net/wireless says -47
    assert data.rssi_dbm == -47
    assert any("75 dBm" in p for p in problems)
    assert any("Operation not supported" in p for p in problems)
    assert (data.ssid, data.bitrate_mbps) == ("MyHomeWiFi", 54.0), "bitrate from the dump"
    assert (data.loss_pct, data.ok) == (50.0, False)


async def test_configured_host_first_gateway_when_host_is_silent(tmp_path: Path):
    runner = FixtureRunner(
        {"link": ok("iwlwifi_link.txt"), "ping": ok("iputils_ping_all_lost.txt", 1)}
    )

    async def ping_by_host(argv: Sequence[str], timeout: float) -> CommandResult:
        if argv[0] == "ping" and argv[-1] == "192.168.18.1":  # the gateway in the fixture
            return ok("iputils_ping.txt")
        return await runner(argv, timeout)

    src = source(tmp_path, runner, interface="wlp4s0")
    src._run = ping_by_host
    data, problems = await src.sample()
    assert problems == []
    assert (data.latency_ms, data.loss_pct) == (265.071, 0.0), "the gateway's figures"


# -- the source with the simulated radio -----------------------------------------------------
def make(tmp_path: Path, cond: WifiConditions, seed: int = 3, **cfg) -> WifiSource:
    sim = SimWifi(cond, random.Random(seed), tmp_path / "radio")
    return WifiSource(WifiSection(**cfg), 60, ScaledClock(speed=6000), **sim.source_kwargs())


@pytest.mark.parametrize(
    "cond",
    [
        WifiConditions(),
        WifiConditions(rssi_dbm=-61.4, bitrate_mbps=144.4, latency_ms=20, jitter_ms=1, dns_ms=5),
        WifiConditions(rssi_dbm=-79, bitrate_mbps=24, latency_ms=90, jitter_ms=25, loss_pct=10),
        WifiConditions(freq_mhz=2412, latency_ms=3.2, jitter_ms=0.4, loss_pct=45),
    ],
)
async def test_simulated_radio_round_trips_through_the_parsers(tmp_path: Path, cond):
    data, problems = await make(tmp_path, cond, ping_count=20).sample()
    assert problems == []
    assert (data.ssid, data.bssid, data.freq_mhz) == (cond.ssid, cond.bssid, cond.freq_mhz)
    assert (data.rssi_dbm, data.bitrate_mbps) == (round(cond.rssi_dbm), cond.bitrate_mbps)
    assert data.latency_ms == pytest.approx(cond.latency_ms, abs=0.001)
    assert data.jitter_ms == pytest.approx(cond.jitter_ms, abs=0.001)
    assert data.loss_pct == cond.loss_pct
    assert data.dns_ms is not None
    assert data.dns_ms >= cond.dns_ms - 1, "the resolver took at least that long"
    assert data.portal_ok is True
    assert data.ok is (cond.rssi_dbm >= -75 and cond.loss_pct <= 5)


async def test_runs_interval_after_interval(tmp_path: Path):
    cond = WifiConditions(rssi_dbm=-66)
    sink = Recorder()
    task = asyncio.create_task(make(tmp_path, cond).run(sink))
    first = await sink.until(lambda d: isinstance(d, WifiData))
    cond.rssi_dbm = -80
    later = await sink.until(lambda d: isinstance(d, WifiData) and d.rssi_dbm == -80)
    await stop(task)
    assert (first.rssi_dbm, first.ok) == (-66, True)
    assert (later.rssi_dbm, later.ok) == (-80, False)
    assert sink.faults == {"wifi": None}


async def test_degraded_link_is_not_ok(tmp_path: Path):
    data, _ = await make(tmp_path, WifiConditions(rssi_dbm=-80)).sample()
    assert (data.rssi_dbm, data.ok) == (-80, False)
    data, _ = await make(tmp_path, WifiConditions(loss_pct=40), ping_count=5).sample()
    assert (data.loss_pct, data.ok) == (40.0, False)
    data, _ = await make(tmp_path, WifiConditions(dns_ms=520)).sample()
    assert data.dns_ms is not None
    assert data.dns_ms > 500
    assert data.ok is False, "a slow resolver makes every page slow"


async def test_portal_redirect_is_not_internet(tmp_path: Path):
    data, _ = await make(tmp_path, WifiConditions(portal_ok=False)).sample()
    assert (data.portal_ok, data.ok) == (False, False)


async def test_not_connected_gives_nulls(tmp_path: Path):
    data, problems = await make(tmp_path, WifiConditions(connected=False)).sample()
    assert problems == []
    assert (data.ssid, data.bssid, data.freq_mhz, data.rssi_dbm) == (None, None, None, None)
    assert (data.latency_ms, data.loss_pct, data.ok) == (None, None, False)


async def test_missing_iw_is_a_fault_not_a_crash(tmp_path: Path):
    cond = WifiConditions(iw_available=False, rssi_dbm=-62)
    sink = Recorder()
    task = asyncio.create_task(make(tmp_path, cond).run(sink))
    data = await sink.until(lambda d: isinstance(d, WifiData))
    await sink.until(lambda d: isinstance(d, WifiData), after=sink.mark())
    await stop(task)
    assert "iw is not installed" in (sink.faults["wifi"] or "")
    assert (data.ssid, data.bssid, data.freq_mhz, data.bitrate_mbps) == (None, None, None, None)
    assert data.rssi_dbm == -62, "the signal still comes from /proc/net/wireless"
    assert data.latency_ms is not None, "the probes still run"


async def test_a_hanging_command_is_a_fault(tmp_path: Path):
    async def hangs(argv: Sequence[str], timeout: float) -> CommandResult:
        raise TimeoutError

    src = make(tmp_path, WifiConditions())
    src._run = hangs
    data, problems = await src.sample()
    assert any("iw dev wlan0 link: no answer" in p for p in problems)
    assert any("ping" in p for p in problems)
    assert (data.ssid, data.latency_ms) == (None, None)


async def test_roaming_emits_an_event_after_the_reading(tmp_path: Path):
    cond = WifiConditions(bssid="dc:a6:32:00:00:01")
    sink = Recorder()
    task = asyncio.create_task(make(tmp_path, cond).run(sink))
    await sink.until(lambda d: isinstance(d, WifiData))
    cond.bssid = "dc:a6:32:00:00:02"
    event = await sink.event("roamed")
    await stop(task)
    assert event.detail == "dc:a6:32:00:00:01 -> dc:a6:32:00:00:02"
    before = sink.data[sink.data.index(event) - 1]
    assert isinstance(before, WifiData)
    assert before.bssid == "dc:a6:32:00:00:02"
    assert len(sink.events("roamed")) == 1


async def test_reconnecting_is_not_roaming(tmp_path: Path):
    cond = WifiConditions(bssid="dc:a6:32:00:00:01")
    src, sink = make(tmp_path, cond), Recorder()
    task = asyncio.create_task(src.run(sink))
    await sink.until(lambda d: isinstance(d, WifiData))
    cond.connected = False
    await sink.until(lambda d: isinstance(d, WifiData) and d.bssid is None)
    cond.connected, cond.bssid = True, "dc:a6:32:00:00:02"
    await sink.until(lambda d: isinstance(d, WifiData) and d.bssid == cond.bssid)
    await stop(task)
    assert not any(isinstance(d, EventData) for d in sink.data)


# -- the real seams ---------------------------------------------------------------------------
class _Portal(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/generate_204":
            self.send_response(204)
        elif self.path == "/captive":
            self.send_response(302)
            self.send_header("Location", "/login")
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def portal() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Portal)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


async def test_http_probe_does_not_follow_a_portal_redirect(portal: str):
    assert await urllib_http_probe(f"{portal}/generate_204", 5) == 204
    assert await urllib_http_probe(f"{portal}/captive", 5) == 302


async def test_source_with_real_probe_sees_the_captive_portal(tmp_path: Path, portal: str):
    src = make(tmp_path, WifiConditions(), portal_url=f"{portal}/captive")
    src._http = urllib_http_probe
    data, _ = await src.sample()
    assert (data.portal_ok, data.ok) == (False, False)
    src = make(tmp_path, WifiConditions(), portal_url=f"{portal}/generate_204")
    src._http = urllib_http_probe
    data, _ = await src.sample()
    assert (data.portal_ok, data.ok) == (True, True)


async def test_subprocess_runner():
    run = SubprocessRunner()
    result = await run([sys.executable, "-c", "import os; print(os.environ['LC_ALL'])"], 10)
    assert (result.returncode, result.stdout) == (0, "C\n")
    with pytest.raises(FileNotFoundError):
        await run(["learnroom-no-such-tool"], 10)
    with pytest.raises(TimeoutError):
        await run([sys.executable, "-c", "import time; time.sleep(30)"], 0.2)
