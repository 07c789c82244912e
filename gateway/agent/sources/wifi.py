"""Wi-Fi health as the room sees it: link figures from ``iw`` and active probes.

Link: ``iw dev <if> link`` (SSID, BSSID, frequency, signal, tx bitrate), with ``iw dev <if>
station dump`` and ``/proc/net/wireless`` as fallbacks because drivers fill different fields
(brcmfmac on the Pi reports the station signal as 0 dBm on some firmware: that means "not
reported", not a perfect signal). Probes, run concurrently: ping to the default gateway and to
a configured host, the time to resolve a name, and a captive-portal check (HTTP 204 expected;
a portal answers 200 or a redirect).

Latency, jitter and loss are those of the configured host when it answers at all (that is
what users feel), else those of the default gateway (then the uplink is the problem).
Jitter is the mean absolute difference of consecutive round-trip times (RFC 3550's idea,
without its smoothing), computed the same way for iputils and busybox ping.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gateway import const
from gateway.agent.sources.base import Sink
from gateway.clock import Clock
from gateway.config import WifiSection
from gateway.models import EventData, WifiData

_LOGGER = logging.getLogger(__name__)


# -- parsers (pure) ---------------------------------------------------------------------------
@dataclass(frozen=True)
class LinkInfo:
    connected: bool
    bssid: str | None = None
    ssid: str | None = None
    freq_mhz: int | None = None
    signal_dbm: float | None = None
    tx_bitrate_mbps: float | None = None
    rx_bitrate_mbps: float | None = None


_BSSID = re.compile(r"^Connected to ([0-9a-fA-F:]{17})", re.M)
_FIELD = re.compile(r"^\s*([A-Za-z][A-Za-z ]*?):\s*(.*?)\s*$", re.M)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _num(text: str | None) -> float | None:
    if text is None:
        return None
    match = _NUMBER.search(text)
    return float(match.group()) if match else None


def _signal(text: str | None) -> float | None:
    value = _num(text)
    # 0 dBm (or above) is what a driver says when it does not know (brcmfmac, mwlwifi)
    return value if value is not None and value < 0 else None


def parse_iw_link(text: str) -> LinkInfo:
    """``iw dev <if> link``."""
    if "Not connected" in text:
        return LinkInfo(connected=False)
    bssid = _BSSID.search(text)
    if bssid is None:
        return LinkInfo(connected=False)
    fields = {k.strip().lower(): v for k, v in _FIELD.findall(text)}
    freq = _num(fields.get("freq"))
    return LinkInfo(
        connected=True,
        bssid=bssid.group(1).lower(),
        ssid=fields.get("ssid"),
        freq_mhz=int(freq) if freq is not None else None,
        signal_dbm=_signal(fields.get("signal")),
        tx_bitrate_mbps=_num(fields.get("tx bitrate")),
        rx_bitrate_mbps=_num(fields.get("rx bitrate")),
    )


def parse_station_dump(text: str) -> LinkInfo:
    """``iw dev <if> station dump``: on a client, one station, the access point."""
    match = re.search(r"^Station ([0-9a-fA-F:]{17})", text, re.M)
    if match is None:
        return LinkInfo(connected=False)
    block = text[match.end() :].split("\nStation ", 1)[0]
    fields = {k.strip().lower(): v for k, v in _FIELD.findall(block)}
    return LinkInfo(
        connected=True,
        bssid=match.group(1).lower(),
        signal_dbm=_signal(fields.get("signal avg")) or _signal(fields.get("signal")),
        tx_bitrate_mbps=_num(fields.get("tx bitrate")),
        rx_bitrate_mbps=_num(fields.get("rx bitrate")),
    )


def parse_proc_wireless(text: str, interface: str) -> float | None:
    """Signal level (dBm) of ``interface`` from ``/proc/net/wireless``."""
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        if sep and name.strip() == interface:
            parts = rest.split()
            if len(parts) >= 3:
                return _signal(parts[2].rstrip("."))
    return None


def parse_default_gateway(text: str, interface: str | None = None) -> str | None:
    """The default gateway from ``/proc/net/route`` (hex, little-endian)."""
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 4 or parts[1] != "00000000":
            continue
        if interface is not None and parts[0] != interface:
            continue
        if not int(parts[3], 16) & 0x2:  # RTF_GATEWAY
            continue
        return socket.inet_ntoa(int(parts[2], 16).to_bytes(4, "little"))
    return None


@dataclass(frozen=True)
class PingResult:
    sent: int
    received: int
    rtts_ms: tuple[float, ...] = field(default_factory=tuple)
    avg_ms: float | None = None
    mdev_ms: float | None = None

    @property
    def loss_pct(self) -> float | None:
        return None if self.sent == 0 else round(100.0 * (self.sent - self.received) / self.sent, 1)

    @property
    def jitter_ms(self) -> float | None:
        if len(self.rtts_ms) >= 2:
            diffs = [abs(b - a) for a, b in zip(self.rtts_ms, self.rtts_ms[1:], strict=False)]
            return round(statistics.fmean(diffs), 3)
        return self.mdev_ms


_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")
_RTT = re.compile(
    r"(?:rtt|round-trip) min/avg/max(?:/mdev)? = ([\d.]+)/([\d.]+)/([\d.]+)(?:/([\d.]+))?"
)
_REPLY = re.compile(r"(?:icmp_seq|seq)=\d+ .*?time[=<]([\d.]+) ?ms")


def parse_ping(text: str) -> PingResult | None:
    """iputils or busybox ``ping`` output; None when it is neither."""
    summary = _SUMMARY.search(text)
    if summary is None:
        return None
    rtts = tuple(float(t) for t in _REPLY.findall(text))
    rtt = _RTT.search(text)
    return PingResult(
        sent=int(summary.group(1)),
        received=int(summary.group(2)),
        rtts_ms=rtts,
        avg_ms=float(rtt.group(2)) if rtt else (statistics.fmean(rtts) if rtts else None),
        mdev_ms=float(rtt.group(4)) if rtt and rtt.group(4) else None,
    )


# -- seams ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str = ""


class CommandRunner(Protocol):
    async def __call__(self, argv: Sequence[str], timeout: float) -> CommandResult: ...


class Resolver(Protocol):
    async def __call__(self, name: str) -> None:
        """Resolve ``name``; raise OSError on failure."""


class HttpProbe(Protocol):
    async def __call__(self, url: str, timeout: float) -> int:
        """HTTP status of a GET, redirects not followed; raise OSError on failure."""


async def subprocess_runner(argv: Sequence[str], timeout: float) -> CommandResult:
    """Runs a command; a missing binary raises FileNotFoundError, a hang is killed."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return CommandResult(
        proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
    )


async def system_resolver(name: str) -> None:
    await asyncio.get_running_loop().getaddrinfo(name, None, type=socket.SOCK_STREAM)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a captive portal redirects: we want to see that, not follow it


async def urllib_http_probe(url: str, timeout: float) -> int:
    def get() -> int:
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(url, timeout=timeout) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:  # 3xx/4xx/5xx arrive as errors here
            return int(exc.code)

    return await asyncio.to_thread(get)


# -- the source -------------------------------------------------------------------------------
class WifiSource:
    name = "wifi"

    def __init__(
        self,
        config: WifiSection,
        interval_s: float,
        clock: Clock,
        *,
        run: CommandRunner = subprocess_runner,
        resolve: Resolver = system_resolver,
        http_probe: HttpProbe = urllib_http_probe,
        proc_wireless: Path = Path("/proc/net/wireless"),
        proc_route: Path = Path("/proc/net/route"),
    ) -> None:
        self.config = config
        self.interval_s = interval_s
        self.clock = clock
        self._run = run
        self._resolve = resolve
        self._http = http_probe
        self._proc_wireless = proc_wireless
        self._proc_route = proc_route
        self._last_bssid: str | None = None
        self.problems: list[str] = []

    async def _iw(self, *args: str) -> str | None:
        argv = ["iw", "dev", self.config.interface, *args]
        try:
            result = await self._run(argv, self.config.timeout_s)
        except FileNotFoundError:
            self.problems.append("iw is not installed (apt-get install iw)")
            return None
        except (TimeoutError, OSError) as exc:
            self.problems.append(f"{' '.join(argv)}: {exc or 'timed out'}")
            return None
        if result.returncode != 0:
            self.problems.append(
                f"{' '.join(argv)}: {result.stderr.strip()[:120] or result.returncode}"
            )
            return None
        return result.stdout

    def _read(self, path: Path) -> str | None:
        try:
            return path.read_text()
        except OSError:
            return None

    async def link(self) -> LinkInfo:
        text = await self._iw("link")
        info = parse_iw_link(text) if text is not None else LinkInfo(connected=False)
        if info.connected and (info.signal_dbm is None or info.tx_bitrate_mbps is None):
            dump = await self._iw("station", "dump")
            station = parse_station_dump(dump) if dump else None
            if station is not None and station.connected:
                info = LinkInfo(
                    connected=True,
                    bssid=info.bssid,
                    ssid=info.ssid,
                    freq_mhz=info.freq_mhz,
                    signal_dbm=info.signal_dbm or station.signal_dbm,
                    tx_bitrate_mbps=info.tx_bitrate_mbps or station.tx_bitrate_mbps,
                    rx_bitrate_mbps=info.rx_bitrate_mbps or station.rx_bitrate_mbps,
                )
        if info.signal_dbm is None:
            wireless = self._read(self._proc_wireless)
            signal = parse_proc_wireless(wireless, self.config.interface) if wireless else None
            if signal is not None:
                info = LinkInfo(**{**info.__dict__, "signal_dbm": signal})
        return info

    async def _ping(self, host: str) -> PingResult | None:
        timeout = self.config.timeout_s
        argv = [
            "ping",
            "-n",
            "-c",
            str(self.config.ping_count),
            "-i",
            "0.2",
            "-W",
            str(max(1, round(timeout))),
            host,
        ]
        try:
            result = await self._run(argv, timeout + self.config.ping_count)
        except (FileNotFoundError, TimeoutError, OSError) as exc:
            self.problems.append(f"ping {host}: {exc or 'timed out'}")
            return None
        return parse_ping(result.stdout)

    async def _dns(self) -> float | None:
        if not self.config.dns_name:
            return None
        start = time.perf_counter()
        try:
            await asyncio.wait_for(self._resolve(self.config.dns_name), self.config.timeout_s)
        except (OSError, TimeoutError):
            return None  # the name did not resolve: ok becomes False through dns None + loss
        return round((time.perf_counter() - start) * 1000, 1)

    async def _portal(self) -> bool | None:
        if not self.config.portal_url:
            return None
        try:
            status = await self._http(self.config.portal_url, self.config.timeout_s)
        except (OSError, TimeoutError):
            return False
        return status == 204

    async def sample(self) -> tuple[WifiData, list[str]]:
        """One reading, and the problems met while taking it."""
        self.problems = []
        route = self._read(self._proc_route)
        gateway = parse_default_gateway(route, self.config.interface) if route else None
        link, gw_ping, host_ping, dns_ms, portal_ok = await asyncio.gather(
            self.link(),
            self._ping(gateway) if gateway else _none(),
            self._ping(self.config.ping_host) if self.config.ping_host else _none(),
            self._dns(),
            self._portal(),
        )
        ping = host_ping if host_ping and host_ping.received else gw_ping or host_ping
        rssi = link.signal_dbm
        low, high = const.RSSI_RANGE_DBM
        if rssi is not None and not low <= rssi <= high:
            self.problems.append(f"signal {rssi} dBm outside {low}..{high}")
            rssi = None
        loss = ping.loss_pct if ping else None
        latency = round(ping.avg_ms, 2) if ping and ping.avg_ms is not None else None
        ok = (
            link.connected
            and rssi is not None
            and rssi >= const.WIFI_RSSI_DEGRADED_DBM
            and (loss is None or loss <= const.WIFI_LOSS_DEGRADED_PCT)
            and (dns_ms is not None or not self.config.dns_name)
            and (dns_ms is None or dns_ms <= const.WIFI_DNS_DEGRADED_MS)
            and portal_ok is not False
        )
        data = WifiData(
            ssid=link.ssid if link.connected else None,
            bssid=link.bssid if link.connected else None,
            freq_mhz=link.freq_mhz if link.connected else None,
            rssi_dbm=rssi if link.connected else None,
            bitrate_mbps=link.tx_bitrate_mbps if link.connected else None,
            latency_ms=latency,
            jitter_ms=ping.jitter_ms if ping and ping.received >= 2 else None,
            loss_pct=loss,
            dns_ms=dns_ms,
            portal_ok=portal_ok,
            ok=ok,
        )
        return data, list(self.problems)

    async def run(self, sink: Sink) -> None:
        while True:
            data, problems = await self.sample()
            sink.fault(self.name, "; ".join(problems) if problems else None)
            sink.emit(data)
            if data.bssid and self._last_bssid and data.bssid != self._last_bssid:
                sink.emit(EventData(type="roamed", detail=f"{self._last_bssid} -> {data.bssid}"))
            if data.bssid:
                self._last_bssid = data.bssid
            await self.clock.sleep(self.interval_s)


async def _none() -> None:
    return None
