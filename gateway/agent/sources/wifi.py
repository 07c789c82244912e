"""Wi-Fi health as the room's users feel it: the radio link from ``iw``, and active probes.

Link figures come from ``iw dev <if> link``. Drivers fill it unevenly (see the recorded outputs
in ``tests/fixtures/wifi``): brcmfmac on a Pi 400 leaves out the SSID, rtl8723bs returns an
empty ``station dump``, mwlwifi and brcmfmac in AP mode print ``signal: 0 dBm`` when they do
not know, an mt76 build printed ``+75 dBm``. So a missing or implausible figure is looked up in
``iw dev <if> station dump`` and, for the signal, in ``/proc/net/wireless``; 0 dBm counts as
"not reported", a value outside ``const.RSSI_RANGE_DBM`` is dropped and reported as a fault.

Probes run concurrently: ping the default gateway (from ``/proc/net/route``) and
``config.ping_host``, time the resolution of ``config.dns_name``, and fetch
``config.portal_url`` without following redirects (204 means open Internet; a captive portal
answers 200 or a redirect).

Latency, jitter and loss are those of ``config.ping_host`` when it answers at all, because that
is the path users take; when it does not (many guest networks drop ICMP to the outside) they
are the default gateway's, which still describe the radio link; when neither answers, the
host's 100 % loss is reported. Jitter is the standard deviation of the round-trip times, which
is what iputils prints as ``mdev``; for BusyBox it is computed from the reply lines the same
way.

``ok`` is instantaneous (RSSI, loss, DNS time and portal against ``gateway.const``); that it
must stay bad for five minutes before anyone is told is the alert service's business.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import socket
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from gateway import const
from gateway.agent.config import WifiSection
from gateway.agent.sources.base import Sink
from gateway.clock import Clock
from gateway.models import EventData, WifiData

__all__ = [
    "CommandResult",
    "CommandRunner",
    "HttpProbe",
    "LinkInfo",
    "PingResult",
    "ProcWireless",
    "Resolver",
    "SubprocessRunner",
    "WifiSource",
    "parse_default_gateway",
    "parse_iw_link",
    "parse_ping",
    "parse_proc_wireless",
    "parse_station_dump",
    "system_resolver",
    "urllib_http_probe",
]

_LOGGER = logging.getLogger(__name__)

#: ``ping -i`` in seconds: the smallest interval iputils allows without root.
PING_INTERVAL_S = 0.2


# -- parsers: pure functions over the text the tools print ------------------------------------
@dataclass(frozen=True)
class LinkInfo:
    """What ``iw`` said about the link; None wherever the driver printed nothing."""

    connected: bool
    bssid: str | None = None
    ssid: str | None = None
    freq_mhz: int | None = None
    signal_dbm: float | None = None
    signal_avg_dbm: float | None = None
    tx_bitrate_mbps: float | None = None
    rx_bitrate_mbps: float | None = None


_MAC = re.compile(r"^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}$")
_CONNECTED = re.compile(r"^Connected to (\S+)", re.MULTILINE)
_STATION = re.compile(r"^Station (\S+)", re.MULTILINE)
# an indented "key: value" line; drivers indent with a tab or with spaces
_FIELD = re.compile(r"^[ \t]+([A-Za-z][A-Za-z /-]*?):[ \t]*(.*?)[ \t]*$", re.MULTILINE)
_DBM = re.compile(r"^(-?\d+(?:\.\d+)?)\s*(?:\[[^\]]*\]\s*)?dBm")
_MBIT = re.compile(r"^(\d+(?:\.\d+)?)\s*MBit/s")
_NUMBER = re.compile(r"^\d+(?:\.\d+)?")


def _mac(text: str) -> str | None:
    """A BSSID, or None where a reporter redacted it (``xx:xx``, ``<BSSID>``)."""
    return text.lower() if _MAC.match(text) else None


def _fields(block: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for key, value in _FIELD.findall(block):
        fields.setdefault(key.strip().lower(), value)
    return fields


def _match_float(pattern: re.Pattern[str], text: str | None) -> float | None:
    if text is None:
        return None
    match = pattern.match(text)
    return float(match.group(1) if match.groups() else match.group()) if match else None


def parse_iw_link(text: str) -> LinkInfo:
    """``iw dev <if> link``: ``Not connected.`` or a ``Connected to <bssid>`` block."""
    header = _CONNECTED.search(text)
    if header is None:
        return LinkInfo(connected=False)
    fields = _fields(text[header.end() :])
    # iw prints the SSID escaped but otherwise verbatim: spaces inside it are part of it
    ssid = re.search(r"^[ \t]+SSID: (.*)$", text, re.MULTILINE)
    freq = _match_float(_NUMBER, fields.get("freq"))
    return LinkInfo(
        connected=True,
        bssid=_mac(header.group(1)),
        ssid=ssid.group(1).rstrip("\r") if ssid else None,
        freq_mhz=round(freq) if freq is not None else None,
        signal_dbm=_match_float(_DBM, fields.get("signal")),
        tx_bitrate_mbps=_match_float(_MBIT, fields.get("tx bitrate")),
        rx_bitrate_mbps=_match_float(_MBIT, fields.get("rx bitrate")),
    )


def parse_station_dump(text: str) -> LinkInfo:
    """``iw dev <if> station dump`` (or ``station get``): the first station's figures.

    On a client the only station is the access point; an empty dump (rtl8723bs) means the
    driver does not say, not that we are disconnected, so ``connected`` is only True here.
    """
    header = _STATION.search(text)
    if header is None:
        return LinkInfo(connected=False)
    block = _STATION.split(text[header.end() :], maxsplit=1)[0]
    fields = _fields(block)
    return LinkInfo(
        connected=True,
        bssid=_mac(header.group(1)),
        signal_dbm=_match_float(_DBM, fields.get("signal")),
        signal_avg_dbm=_match_float(_DBM, fields.get("signal avg")),
        tx_bitrate_mbps=_match_float(_MBIT, fields.get("tx bitrate")),
        rx_bitrate_mbps=_match_float(_MBIT, fields.get("rx bitrate")),
    )


@dataclass(frozen=True)
class ProcWireless:
    """One interface's line of ``/proc/net/wireless`` (Wireless Extensions statistics)."""

    link_quality: float | None
    level_dbm: float | None
    noise_dbm: float | None


def _we_dbm(token: str) -> float | None:
    # The kernel (net/wireless/wext-proc.c) prints dBm values minus 0x100, so they are
    # negative; a non-negative level is in the driver's relative units, and -256 is "0 dBm",
    # cfg80211's way of saying it has no value. The trailing dot only flags "updated".
    try:
        value = float(token.rstrip("."))
    except ValueError:
        return None
    return value if -256 < value < 0 else None


def parse_proc_wireless(text: str, interface: str) -> ProcWireless | None:
    """The line for ``interface``; None when it is absent.

    cfg80211 drivers print a line only while associated, so None also means "not connected".
    """
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        if not sep or name.strip() != interface:
            continue
        parts = rest.split()
        if len(parts) < 4:
            return None
        try:
            quality: float | None = float(parts[1].rstrip("."))
        except ValueError:
            quality = None
        return ProcWireless(quality, _we_dbm(parts[2]), _we_dbm(parts[3]))
    return None


_RTF_UP, _RTF_GATEWAY = 0x1, 0x2


def parse_default_gateway(text: str, interface: str | None = None) -> str | None:
    """The IPv4 default gateway from ``/proc/net/route`` (addresses are little-endian hex).

    With ``interface``, only a default route through it counts: the gateway of the Ethernet
    port says nothing about the Wi-Fi. Among several, the lowest metric wins, as in the kernel.
    """
    best: tuple[int, str] | None = None
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 8 or (interface is not None and parts[0] != interface):
            continue
        try:
            dest, gateway, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
            metric, mask = int(parts[6]), int(parts[7], 16)
        except ValueError:
            continue
        if dest or mask or flags & (_RTF_UP | _RTF_GATEWAY) != _RTF_UP | _RTF_GATEWAY:
            continue
        address = socket.inet_ntoa(gateway.to_bytes(4, "little"))
        if best is None or metric < best[0]:
            best = (metric, address)
    return best[1] if best else None


@dataclass(frozen=True)
class PingResult:
    transmitted: int
    received: int
    #: As ping printed it (iputils may print ``33.3333%``), else computed.
    loss_pct: float
    #: Per-reply round-trip times, in the order printed.
    rtts_ms: tuple[float, ...] = ()
    avg_ms: float | None = None
    mdev_ms: float | None = None

    @property
    def latency_ms(self) -> float | None:
        if self.avg_ms is not None:
            return self.avg_ms
        return statistics.fmean(self.rtts_ms) if self.rtts_ms else None

    @property
    def jitter_ms(self) -> float | None:
        """iputils' ``mdev`` (the population standard deviation), computed alike for BusyBox."""
        if self.mdev_ms is not None:
            return self.mdev_ms
        return statistics.pstdev(self.rtts_ms) if len(self.rtts_ms) >= 2 else None


_SUMMARY = re.compile(
    r"^(\d+) packets transmitted, (\d+)(?: packets)? received"
    r"(?:, \+\d+ (?:duplicates|errors|corrupted))*"
    r"(?:, (\d+(?:\.\d+)?)% packet loss)?",
    re.MULTILINE,
)
# the summary: iputils says rtt and adds mdev, BusyBox says round-trip
_RTT = re.compile(
    r"^(?:rtt|round-trip) min/avg/max(?:/mdev)? = "
    r"([\d.]+)/([\d.]+)/([\d.]+)(?:/([\d.]+))? ms",
    re.MULTILINE,
)
# iputils "icmp_seq=2 ttl=52 time=260 ms" (>= 100 ms without decimals); BusyBox "seq=0 ... "
_REPLY = re.compile(r"\b(?:icmp_)?seq=\d+ .*?\btime[=<]([\d.]+) ?ms", re.MULTILINE)


def parse_ping(text: str) -> PingResult | None:
    """iputils or BusyBox ``ping`` output; None when there is no statistics line."""
    summary = _SUMMARY.search(text)
    if summary is None:
        return None
    sent, received = int(summary.group(1)), int(summary.group(2))
    if summary.group(3) is not None:
        loss = float(summary.group(3))
    elif sent:
        loss = 100.0 * (sent - received) / sent
    else:
        return None
    rtt = _RTT.search(text)
    return PingResult(
        transmitted=sent,
        received=received,
        loss_pct=loss,
        rtts_ms=tuple(float(t) for t in _REPLY.findall(text)),
        avg_ms=float(rtt.group(2)) if rtt else None,
        mdev_ms=float(rtt.group(4)) if rtt and rtt.group(4) is not None else None,
    )


# -- seams: how the source reaches the system ------------------------------------------------
@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str = ""


class CommandRunner(Protocol):
    async def __call__(self, argv: Sequence[str], timeout: float) -> CommandResult:
        """Run ``argv``; FileNotFoundError if it is not installed, TimeoutError if it hangs."""
        ...


class Resolver(Protocol):
    async def __call__(self, name: str) -> None:
        """Resolve ``name``, raising OSError (``socket.gaierror``) when it does not resolve."""
        ...


class HttpProbe(Protocol):
    async def __call__(self, url: str, timeout: float) -> int:
        """HTTP status of a GET with redirects not followed; OSError when unreachable."""
        ...


class SubprocessRunner:
    """Runs a command with the C locale, so ping prints no translated words or decimal commas."""

    async def __call__(self, argv: Sequence[str], timeout: float) -> CommandResult:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "LC_ALL": "C"},
        )
        try:
            async with asyncio.timeout(timeout):
                out, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        except asyncio.CancelledError:
            proc.kill()
            await proc.wait()
            raise
        return CommandResult(
            proc.returncode if proc.returncode is not None else -1,
            out.decode(errors="replace"),
            err.decode(errors="replace"),
        )


async def system_resolver(name: str) -> None:
    """The system's resolver (nsswitch, /etc/hosts, DNS), as applications see it."""
    await asyncio.get_running_loop().getaddrinfo(name, None, type=socket.SOCK_STREAM)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: object,
        code: int,
        msg: str,
        headers: object,
        newurl: str,
    ) -> None:
        return None  # a captive portal redirects: we want to see the 302, not the login page


async def urllib_http_probe(url: str, timeout: float) -> int:
    """GET ``url`` in a thread; the status of the first answer, redirects not followed."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"portal_url {url!r}: only http:// and https:// URLs can be probed")

    def get() -> int:
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(url, timeout=timeout) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:  # 3xx (not followed), 4xx and 5xx land here
            exc.close()
            return int(exc.code)

    return await asyncio.to_thread(get)


# -- the source --------------------------------------------------------------------------------
_SUBPROCESS_RUNNER = SubprocessRunner()


class WifiSource:
    name = "wifi"

    def __init__(
        self,
        config: WifiSection,
        interval_s: float,
        clock: Clock,
        *,
        run: CommandRunner = _SUBPROCESS_RUNNER,
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

    # -- link ---------------------------------------------------------------------------------
    async def _iw(self, args: Sequence[str], problems: list[str]) -> str | None:
        argv = ["iw", "dev", self.config.interface, *args]
        command = " ".join(argv)
        try:
            result = await self._run(argv, self.config.timeout_s)
        except FileNotFoundError:
            problems.append("iw is not installed (apt-get install iw)")
            return None
        except TimeoutError:
            problems.append(f"{command}: no answer within {self.config.timeout_s:g} s")
            return None
        except OSError as exc:
            problems.append(f"{command}: {exc.strerror or exc}")
            return None
        if result.returncode != 0:
            # vwifi prints the first lines, then "command failed: Operation not supported"
            detail = (result.stderr.strip() or result.stdout.strip())[-120:]
            problems.append(f"{command} failed ({result.returncode}): {detail}")
        return result.stdout

    def _signal(self, value: float | None, where: str, problems: list[str]) -> float | None:
        if value is None or value == 0:
            return None  # 0 dBm: the driver did not measure (mwlwifi, brcmfmac in AP mode)
        low, high = const.RSSI_RANGE_DBM
        if not low <= value <= high:
            problems.append(f"{where}: signal {value:g} dBm is outside {low:g}..{high:g} dBm")
            return None
        return value

    async def link(self, problems: list[str]) -> tuple[LinkInfo | None, float | None]:
        """The link as ``iw`` sees it (None when it could not be asked) and a usable RSSI."""
        text = await self._iw(["link"], problems)
        info = parse_iw_link(text) if text is not None else None
        if info is not None and not info.connected:
            return info, None
        rssi = None
        if info is not None:
            rssi = self._signal(info.signal_dbm, "iw link", problems)
            if rssi is None or info.tx_bitrate_mbps is None:
                dump = await self._iw(["station", "dump"], problems)
                station = parse_station_dump(dump) if dump else LinkInfo(connected=False)
                if station.connected:
                    if rssi is None:
                        rssi = self._signal(station.signal_dbm, "iw station dump", problems)
                    if rssi is None:
                        rssi = self._signal(station.signal_avg_dbm, "iw station dump", problems)
                    if info.tx_bitrate_mbps is None:
                        info = replace(info, tx_bitrate_mbps=station.tx_bitrate_mbps)
        if rssi is None:
            wireless = self._proc_line()
            if wireless is not None:
                rssi = self._signal(wireless.level_dbm, str(self._proc_wireless), problems)
        return info, rssi

    def _proc_line(self) -> ProcWireless | None:
        try:
            text = self._proc_wireless.read_text()
        except OSError:
            return None  # a kernel without wireless extensions: nothing to fall back to
        return parse_proc_wireless(text, self.config.interface)

    def _gateway(self, problems: list[str]) -> str | None:
        try:
            text = self._proc_route.read_text()
        except OSError as exc:
            problems.append(f"{self._proc_route}: {exc.strerror or exc}")
            return None
        return parse_default_gateway(text, self.config.interface)

    # -- probes -------------------------------------------------------------------------------
    async def _ping(self, host: str, problems: list[str]) -> PingResult | None:
        count, wait = self.config.ping_count, max(1, math.ceil(self.config.timeout_s))
        argv = ["ping", "-c", str(count), "-i", f"{PING_INTERVAL_S:g}", "-W", str(wait), host]
        try:
            result = await self._run(argv, count * PING_INTERVAL_S + wait + 2)
        except FileNotFoundError:
            problems.append("ping is not installed (apt-get install iputils-ping)")
            return None
        except TimeoutError:
            problems.append(f"ping {host}: did not finish")
            return None
        except OSError as exc:
            problems.append(f"ping {host}: {exc.strerror or exc}")
            return None
        parsed = parse_ping(result.stdout)
        if parsed is None:
            if result.returncode == 0:
                problems.append(f"ping {host}: output not understood: {result.stdout[:80]!r}")
            else:  # e.g. "connect: Network is unreachable": a finding, not a fault of ours
                _LOGGER.debug("ping %s: %s", host, result.stderr.strip()[:120])
        return parsed

    async def _dns(self, name: str) -> float | None:
        """Milliseconds to resolve ``name``; None when it did not resolve in time.

        Timed with the real clock: it measures the network, not the (maybe scaled) room time.
        """
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.config.timeout_s):
                await self._resolve(name)
        except (OSError, TimeoutError) as exc:
            _LOGGER.debug("resolving %s failed: %s", name, exc)
            return None
        return (time.perf_counter() - start) * 1000.0

    async def _portal(self, url: str) -> bool:
        """True for HTTP 204; a portal's login page or redirect, or no answer, is False."""
        try:
            async with asyncio.timeout(self.config.timeout_s + 1):
                status = await self._http(url, self.config.timeout_s)
        except (OSError, TimeoutError) as exc:
            _LOGGER.debug("portal check %s failed: %s", url, exc)
            return False
        return status == 204

    # -- one reading ----------------------------------------------------------------------------
    async def sample(self) -> tuple[WifiData, list[str]]:
        """One reading, and what went wrong taking it (empty when all is well)."""
        problems: list[str] = []
        cfg = self.config
        info, rssi = await self.link(problems)
        if info is None:
            # iw could not be asked: cfg80211 prints a /proc/net/wireless line only while
            # associated, so a signal level found there still tells us we are connected
            connected: bool | None = True if rssi is not None else None
        else:
            connected = info.connected

        ping: PingResult | None = None
        dns_ms: float | None = None
        portal_ok: bool | None = None
        pinged = False
        if connected is not False:
            gateway = self._gateway(problems)
            targets = [h for h in (cfg.ping_host, gateway) if h]
            pinged = bool(targets)
            pings, dns_ms, portal_ok = await asyncio.gather(
                asyncio.gather(*(self._ping(host, problems) for host in targets)),
                self._dns(cfg.dns_name) if cfg.dns_name else _none(),
                self._portal(cfg.portal_url) if cfg.portal_url else _none(),
            )
            ping = _choose(pings)

        linked = info if info is not None and info.connected else None
        values: dict[str, float | None] = {
            "bitrate_mbps": linked.tx_bitrate_mbps if linked else None,
            "latency_ms": ping.latency_ms if ping else None,
            "jitter_ms": ping.jitter_ms if ping else None,
            "loss_pct": ping.loss_pct if ping else None,
            "dns_ms": dns_ms,
        }
        for key, value in values.items():
            high = 100.0 if key == "loss_pct" else math.inf
            if value is not None and not (0 <= value <= high and math.isfinite(value)):
                problems.append(f"{key}={value:g} is not a plausible reading")
                values[key] = None
        loss, dns = values["loss_pct"], values["dns_ms"]
        ok = (
            connected is True
            and rssi is not None
            and rssi >= const.WIFI_RSSI_DEGRADED_DBM
            and (not pinged or (loss is not None and loss <= const.WIFI_LOSS_DEGRADED_PCT))
            and (not cfg.dns_name or (dns is not None and dns <= const.WIFI_DNS_DEGRADED_MS))
            and portal_ok is not False
        )
        data = WifiData(
            ssid=linked.ssid if linked else None,
            bssid=linked.bssid if linked else None,
            freq_mhz=linked.freq_mhz if linked else None,
            rssi_dbm=_round(rssi, 1) if connected else None,
            bitrate_mbps=values["bitrate_mbps"],
            latency_ms=_round(values["latency_ms"], 3),
            jitter_ms=_round(values["jitter_ms"], 3),
            loss_pct=_round(loss, 2),
            dns_ms=_round(dns, 1),
            portal_ok=portal_ok,
            ok=ok,
        )
        return data, problems

    async def run(self, sink: Sink) -> None:
        while True:
            started = self.clock.monotonic()
            data, problems = await self.sample()
            sink.fault(self.name, "; ".join(problems) if problems else None)
            sink.emit(data)
            if data.bssid and self._last_bssid and data.bssid != self._last_bssid:
                _LOGGER.info("roamed from %s to %s", self._last_bssid, data.bssid)
                sink.emit(EventData(type="roamed", detail=f"{self._last_bssid} -> {data.bssid}"))
            # only two connected samples in a row make a roam; a reconnect is not one
            self._last_bssid = data.bssid
            elapsed = self.clock.monotonic() - started
            await self.clock.sleep(max(0.0, self.interval_s - elapsed))


def _choose(pings: Sequence[PingResult | None]) -> PingResult | None:
    """The first target that answered (configured host before gateway), else the first result."""
    for result in pings:
        if result is not None and result.received > 0:
            return result
    return next((p for p in pings if p is not None), None)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


async def _none() -> None:
    return None
