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

The parsers of what the tools print are in ``wifi_parsers`` (re-exported here).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
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
from gateway.agent.sources.wifi_parsers import (
    LinkInfo,
    PingResult,
    ProcWireless,
    parse_default_gateway,
    parse_iw_link,
    parse_ping,
    parse_proc_wireless,
    parse_station_dump,
)
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
