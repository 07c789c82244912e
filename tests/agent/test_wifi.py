"""Wi-Fi parsers on the layouts real drivers print, and the source end to end."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from gateway.agent.sources.wifi import (
    WifiSource,
    parse_default_gateway,
    parse_iw_link,
    parse_ping,
    parse_proc_wireless,
    parse_station_dump,
)
from gateway.clock import ScaledClock
from gateway.config import WifiSection
from gateway.models import EventData, WifiData
from gateway.sim.wifi import SimWifi, WifiConditions
from tests.sink import Recorder

FIX = Path(__file__).parent.parent / "fixtures" / "wifi"


def fixture(name: str) -> str:
    return (FIX / name).read_text()


@pytest.mark.parametrize(
    ("name", "bssid", "ssid", "freq", "signal", "tx"),
    [
        ("brcmfmac_link.txt", "dc:a6:32:0b:5e:10", "Stadtbuecherei-Public", 2437, -63, 72.2),
        ("iwlwifi_link.txt", "3c:84:6a:21:9f:c4", "eduroam", 5280, -47, 866.7),
        ("rtl8812au_link.txt", "60:e3:27:4a:11:02", "Schule Nord", 5300, -71, 216.7),
        ("mt76_link.txt", "f0:9f:c2:7a:3e:81", "Lernraum OG", 5180, -58, 300.0),
    ],
)
def test_iw_link_of_each_driver(name, bssid, ssid, freq, signal, tx):
    info = parse_iw_link(fixture(name))
    assert info.connected
    assert (info.bssid, info.ssid, info.freq_mhz, info.signal_dbm, info.tx_bitrate_mbps) == (
        bssid,
        ssid,
        freq,
        signal,
        tx,
    )


def test_not_connected():
    assert not parse_iw_link(fixture("not_connected_link.txt")).connected


def test_station_dump_brcmfmac_zero_signal_means_unknown():
    info = parse_station_dump(fixture("brcmfmac_station_dump.txt"))
    assert info.signal_dbm is None, "0 dBm from brcmfmac is 'not reported'"
    assert info.tx_bitrate_mbps == 72.2


def test_station_dump_ath9k_prefers_signal_avg():
    info = parse_station_dump(fixture("ath9k_station_dump.txt"))
    assert (info.bssid, info.signal_dbm, info.tx_bitrate_mbps) == ("84:d8:1b:07:53:07", -67, 130.0)


def test_proc_files():
    assert parse_proc_wireless(fixture("proc_net_wireless.txt"), "wlan0") == -63
    assert parse_proc_wireless(fixture("proc_net_wireless.txt"), "wlan1") is None
    assert parse_default_gateway(fixture("proc_net_route.txt"), "wlan0") == "192.168.1.1"
    assert parse_default_gateway(fixture("proc_net_route.txt"), "eth0") is None


def test_iputils_ping():
    p = parse_ping(fixture("iputils_ping.txt"))
    assert p is not None
    assert (p.sent, p.received, p.loss_pct, p.avg_ms) == (5, 4, 20.0, 2.395)
    # |3.02-2.14| + |1.87-3.02| + |2.55-1.87| over 3
    assert p.jitter_ms == pytest.approx((0.88 + 1.15 + 0.68) / 3, abs=1e-3)


def test_busybox_ping():
    p = parse_ping(fixture("busybox_ping.txt"))
    assert p is not None
    assert (p.sent, p.received, p.loss_pct, p.avg_ms) == (3, 3, 0.0, 13.431)
    assert p.jitter_ms == pytest.approx((1.225 + 0.438) / 2, abs=1e-3)


def test_all_lost_ping():
    p = parse_ping(fixture("iputils_ping_all_lost.txt"))
    assert p is not None
    assert (p.loss_pct, p.avg_ms, p.jitter_ms) == (100.0, None, None)
    assert parse_ping("ping: unknown host") is None


def make(tmp_path: Path, cond: WifiConditions, **cfg) -> WifiSource:
    sim = SimWifi(cond, random.Random(3), tmp_path)
    return WifiSource(WifiSection(**cfg), 60, ScaledClock(speed=6000), **sim.source_kwargs())


async def test_simulated_radio_round_trips_through_the_parsers(tmp_path: Path):
    cond = WifiConditions(
        rssi_dbm=-61, bitrate_mbps=144.4, latency_ms=20, jitter_ms=1, loss_pct=0, dns_ms=5
    )
    data, problems = await make(tmp_path, cond, ping_count=20).sample()
    assert problems == []
    assert (data.ssid, data.bssid, data.freq_mhz) == (cond.ssid, cond.bssid, cond.freq_mhz)
    assert (data.rssi_dbm, data.bitrate_mbps, data.loss_pct) == (-61, 144.4, 0.0)
    assert data.latency_ms == pytest.approx(20, abs=2)
    assert data.dns_ms is not None
    assert data.dns_ms >= 5
    assert data.portal_ok is True
    assert data.ok


async def test_degraded_link_is_not_ok(tmp_path: Path):
    data, _ = await make(tmp_path, WifiConditions(rssi_dbm=-80)).sample()
    assert data.ok is False
    data, _ = await make(tmp_path, WifiConditions(portal_ok=False)).sample()
    assert (data.portal_ok, data.ok) == (False, False), "a portal's redirect is not Internet"


async def test_not_connected_gives_nulls(tmp_path: Path):
    data, _ = await make(tmp_path, WifiConditions(connected=False)).sample()
    assert (data.ssid, data.bssid, data.rssi_dbm, data.ok) == (None, None, None, False)


async def test_missing_iw_is_a_fault_not_a_crash(tmp_path: Path):
    data, problems = await make(tmp_path, WifiConditions(iw_available=False)).sample()
    assert "iw is not installed" in problems[0]
    assert data.ssid is None
    assert data.rssi_dbm is None
    assert data.latency_ms is not None, "the probes still run"


async def test_roaming_emits_an_event(tmp_path: Path):
    cond = WifiConditions(bssid="dc:a6:32:00:00:01")
    source = make(tmp_path, cond)
    sink = Recorder()
    task = asyncio.create_task(source.run(sink))
    while len(sink.data) < 1:
        await asyncio.sleep(0.005)
    cond.bssid = "dc:a6:32:00:00:02"
    while not any(isinstance(d, EventData) for d in sink.data):
        await asyncio.sleep(0.005)
    task.cancel()
    (event,) = [d for d in sink.data if isinstance(d, EventData)]
    assert event.type == "roamed"
    assert event.detail == "dc:a6:32:00:00:01 -> dc:a6:32:00:00:02"
    assert all(isinstance(d, WifiData | EventData) for d in sink.data)
