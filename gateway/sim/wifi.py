"""A simulated radio: renders ``iw``, ``ping`` and ``/proc`` text from ``WifiConditions``.

The real ``WifiSource`` and its parsers then read that text, so a simulated room exercises the
same code as a Pi. The world mutates the conditions over its day; this module only renders
them, in the layouts of the recorded outputs in ``tests/fixtures/wifi`` (iputils ping, a
mac80211 driver's ``iw``).

Round trip: the ping replies are drawn around ``latency_ms`` with ``jitter_ms``, then shifted
and scaled so that their mean and standard deviation are exactly the conditions' (iputils
prints both), and exactly ``round(count * loss_pct / 100)`` packets are lost; so what the
source reports is the conditions, within the rounding of the printed figures.
"""

from __future__ import annotations

import asyncio
import errno
import random
import socket
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.agent.sources.wifi import CommandResult

__all__ = ["SimWifi", "WifiConditions"]

_INTERFACE = "wlan0"


@dataclass
class WifiConditions:
    connected: bool = True
    ssid: str = "Bibliothek-Public"
    bssid: str = "dc:a6:32:0b:5e:10"
    freq_mhz: int = 5180
    rssi_dbm: float = -58.0
    bitrate_mbps: float = 175.5
    latency_ms: float = 12.0
    jitter_ms: float = 2.0
    loss_pct: float = 0.0
    dns_ms: float = 20.0
    portal_ok: bool = True
    iw_available: bool = True
    #: The default gateway written to the simulated ``/proc/net/route``.
    gateway_ip: str = "192.168.1.1"


def iputils_time(ms: float) -> str:
    """A reply time as iputils prints it: three significant digits, none after 100 ms."""
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.3f}"


class SimWifi:
    """Answers the source's commands and probes from the current conditions."""

    def __init__(self, conditions: WifiConditions, rng: random.Random, state_dir: Path) -> None:
        self.conditions = conditions
        self.rng = rng
        self.state_dir = state_dir
        self.proc_wireless = state_dir / "proc_net_wireless"
        self.proc_route = state_dir / "proc_net_route"
        self._written: dict[Path, str] = {}
        self._packets = (0, 0)

    def source_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``WifiSource`` besides config, interval and clock."""
        self.write_proc()
        return {
            "run": self.run,
            "resolve": self.resolve,
            "http_probe": self.http_probe,
            "proc_wireless": self.proc_wireless,
            "proc_route": self.proc_route,
        }

    # -- /proc ----------------------------------------------------------------------------------
    def write_proc(self) -> None:
        """Write both /proc files; like the kernel's, rewritten only when their content changes."""
        c = self.conditions
        self.state_dir.mkdir(parents=True, exist_ok=True)
        gateway = socket.inet_aton(c.gateway_ip)[::-1].hex().upper()
        # net/ipv4/fib_trie.c pads every line to 127 characters
        lines = [
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT"
        ]
        if c.connected:
            lines.append(f"{_INTERFACE}\t00000000\t{gateway}\t0003\t0\t0\t600\t00000000\t0\t0\t0")
        self._write(self.proc_route, "".join(f"{line:<127}\n" for line in lines))
        wireless = (
            "Inter-| sta-|   Quality        |   Discarded packets               | Missed | WE\n"
            " face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22\n"
        )
        if c.connected:  # cfg80211 prints the line only while associated
            quality = min(70, max(0, round(c.rssi_dbm) + 110))
            wireless += (
                f"{_INTERFACE:>6}: 0000   {quality:>2}.  {round(c.rssi_dbm):>3}.  -256"
                "        0      0      0      0      0        0\n"
            )
        self._write(self.proc_wireless, wireless)

    def _write(self, path: Path, text: str) -> None:
        if self._written.get(path) != text:
            path.write_text(text)
            self._written[path] = text

    # -- renderers ----------------------------------------------------------------------------
    def render_link(self) -> str:
        c = self.conditions
        if not c.connected:
            return "Not connected.\n"
        rx, tx = self._packets
        return (
            f"Connected to {c.bssid} (on {_INTERFACE})\n"
            f"\tSSID: {c.ssid}\n"
            f"\tfreq: {c.freq_mhz}\n"
            f"\tRX: {rx * 1120} bytes ({rx} packets)\n"
            f"\tTX: {tx * 180} bytes ({tx} packets)\n"
            f"\tsignal: {round(c.rssi_dbm)} dBm\n"
            f"\trx bitrate: {c.bitrate_mbps:.1f} MBit/s\n"
            f"\ttx bitrate: {c.bitrate_mbps:.1f} MBit/s\n"
            "\n"
            "\tbss flags:\tshort-slot-time\n"
            "\tdtim period:\t1\n"
            "\tbeacon int:\t100\n"
        )

    def render_station_dump(self) -> str:
        c = self.conditions
        if not c.connected:
            return ""
        rx, tx = self._packets
        signal = round(c.rssi_dbm)
        return (
            f"Station {c.bssid} (on {_INTERFACE})\n"
            "\tinactive time:\t40 ms\n"
            f"\trx bytes:\t{rx * 1120}\n"
            f"\trx packets:\t{rx}\n"
            f"\ttx bytes:\t{tx * 180}\n"
            f"\ttx packets:\t{tx}\n"
            "\ttx retries:\t0\n"
            "\ttx failed:\t0\n"
            f"\tsignal:  \t{signal} [{signal - 2}, {signal - 3}] dBm\n"
            f"\tsignal avg:\t{signal} [{signal - 2}, {signal - 3}] dBm\n"
            f"\ttx bitrate:\t{c.bitrate_mbps:.1f} MBit/s\n"
            f"\trx bitrate:\t{c.bitrate_mbps:.1f} MBit/s\n"
            "\tauthorized:\tyes\n"
            "\tauthenticated:\tyes\n"
            "\tassociated:\tyes\n"
            "\tconnected time:\t3600 seconds\n"
        )

    def _rtts(self, count: int) -> list[float | None]:
        """Per-packet round-trip times (None for a lost one); mean and pstdev as conditioned."""
        c = self.conditions
        if not c.connected:
            return [None] * count
        lost = min(count, max(0, round(count * c.loss_pct / 100)))
        answered = count - lost
        draws = [self.rng.gauss(0.0, 1.0) for _ in range(answered)]
        if answered >= 2:
            mean, spread = statistics.fmean(draws), statistics.pstdev(draws)
            z = [(d - mean) / spread if spread else 0.0 for d in draws]
        else:
            z = [0.0] * answered
        times = iter(max(0.001, c.latency_ms + c.jitter_ms * v) for v in z)
        lost_at = set(self.rng.sample(range(count), lost))
        return [None if seq in lost_at else next(times) for seq in range(count)]

    def render_ping(self, host: str, count: int) -> tuple[int, str]:
        """iputils ``ping -c count host``: its exit code and output."""
        rtts = self._rtts(count)
        lines = [f"PING {host} ({host}) 56(84) bytes of data."]
        for seq, rtt in enumerate(rtts, start=1):
            if rtt is not None:
                lines.append(
                    f"64 bytes from {host}: icmp_seq={seq} ttl=64 time={iputils_time(rtt)} ms"
                )
        got = [r for r in rtts if r is not None]
        loss = 100 * (count - len(got)) / count
        lines += [
            "",
            f"--- {host} ping statistics ---",
            f"{count} packets transmitted, {len(got)} received, {loss:g}% packet loss, "
            f"time {(count - 1) * 200 + round(max(got, default=0.0))}ms",
        ]
        if got:
            mean = statistics.fmean(got)
            mdev = statistics.pstdev(got)
            lines.append(
                f"rtt min/avg/max/mdev = {min(got):.3f}/{mean:.3f}/{max(got):.3f}/{mdev:.3f} ms"
            )
        rx, tx = self._packets
        self._packets = (rx + len(got), tx + count)
        return (0 if got else 1), "\n".join(lines) + "\n"

    # -- the seams WifiSource calls -------------------------------------------------------------
    async def run(self, argv: Sequence[str], timeout: float) -> CommandResult:
        self.write_proc()
        await asyncio.sleep(0)  # a command is never instant; let others run
        tool, args = argv[0], list(argv[1:])
        if tool == "iw":
            if not self.conditions.iw_available:
                raise FileNotFoundError(errno.ENOENT, "No such file or directory", "iw")
            if args[-1:] == ["link"]:
                return CommandResult(0, self.render_link())
            if args[-2:] == ["station", "dump"]:
                return CommandResult(0, self.render_station_dump())
            return CommandResult(1, "", f"simulated iw does not know {' '.join(args)!r}\n")
        if tool == "ping":
            count = int(args[args.index("-c") + 1])
            code, out = self.render_ping(args[-1], count)
            return CommandResult(code, out)
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", tool)

    async def resolve(self, name: str) -> None:
        if not self.conditions.connected:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        await asyncio.sleep(self.conditions.dns_ms / 1000)

    async def http_probe(self, url: str, timeout: float) -> int:
        if not self.conditions.connected:
            raise OSError(errno.ENETUNREACH, "Network is unreachable")
        await asyncio.sleep(0)
        return 204 if self.conditions.portal_ok else 302
