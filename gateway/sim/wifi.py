"""A simulated radio: renders ``iw``, ``ping`` and /proc text from ``WifiConditions``.

The real parsers in ``gateway.agent.sources.wifi`` then read it, so the simulation exercises
the same code as a Pi does. The world mutates the conditions; this module only renders.
"""

from __future__ import annotations

import asyncio
import atexit
import random
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.agent.sources.wifi import CommandResult


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
    gateway_ip: str = "192.168.1.1"


class SimWifi:
    def __init__(self, conditions: WifiConditions, rng: random.Random, state_dir: Path) -> None:
        self.c = conditions
        self.rng = rng
        shm = Path("/dev/shm")  # noqa: S108 - a tmpfs, as /proc is no disk either
        if shm.is_dir():
            state_dir = Path(tempfile.mkdtemp(prefix="learnroom-sim-", dir=shm))
            atexit.register(shutil.rmtree, state_dir, ignore_errors=True)
        self.state_dir = state_dir
        self._written: dict[Path, str] = {}
        self.proc_wireless = self.state_dir / "proc_net_wireless"
        self.proc_route = self.state_dir / "proc_net_route"

    def source_kwargs(self) -> dict[str, Any]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.write_proc()
        return {
            "run": self.run,
            "resolve": self.resolve,
            "http_probe": self.http_probe,
            "proc_wireless": self.proc_wireless,
            "proc_route": self.proc_route,
        }

    def write_proc(self) -> None:
        """Like the kernel's /proc: in memory (tmpfs) and rewritten only when it changes."""
        gw = bytes(int(p) for p in self.c.gateway_ip.split("."))[::-1].hex().upper()
        self._write(
            self.proc_route,
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
            f"wlan0\t00000000\t{gw}\t0003\t0\t0\t303\t00000000\t0\t0\t0\n",
        )
        level = f"{self.c.rssi_dbm:.0f}." if self.c.connected else "-256."
        self._write(
            self.proc_wireless,
            "Inter-| sta-|   Quality        |   Discarded packets               | Missed | WE\n"
            " face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22\n"
            f" wlan0: 0000   50.  {level}  -256        0      0      0      0      0        0\n",
        )

    def _write(self, path: Path, text: str) -> None:
        if self._written.get(path) != text:
            path.write_text(text)
            self._written[path] = text

    def render_link(self) -> str:
        c = self.c
        if not c.connected:
            return "Not connected.\n"
        return (
            f"Connected to {c.bssid} (on wlan0)\n\tSSID: {c.ssid}\n\tfreq: {c.freq_mhz}\n"
            "\tRX: 18244512 bytes (98211 packets)\n\tTX: 2210987 bytes (12876 packets)\n"
            f"\tsignal: {c.rssi_dbm:.0f} dBm\n\trx bitrate: {c.bitrate_mbps:.1f} MBit/s\n"
            f"\ttx bitrate: {c.bitrate_mbps:.1f} MBit/s\n\n"
            "\tbss flags:\tshort-slot-time\n\tdtim period:\t1\n\tbeacon int:\t100\n"
        )

    def render_ping(self, host: str, count: int) -> str:
        c = self.c
        lines = [f"PING {host} ({host}) 56(84) bytes of data."]
        rtts = []
        if c.connected:
            for seq in range(1, count + 1):
                if self.rng.random() * 100 < c.loss_pct:
                    continue
                rtt = max(0.1, self.rng.gauss(c.latency_ms, c.jitter_ms))
                rtts.append(rtt)
                lines.append(f"64 bytes from {host}: icmp_seq={seq} ttl=64 time={rtt:.2f} ms")
        loss = round(100 * (count - len(rtts)) / count)
        lines += [
            "",
            f"--- {host} ping statistics ---",
            f"{count} packets transmitted, {len(rtts)} received, {loss}% packet loss, "
            f"time {count * 200}ms",
        ]
        if rtts:
            mean = sum(rtts) / len(rtts)
            mdev = (sum((r - mean) ** 2 for r in rtts) / len(rtts)) ** 0.5
            lines.append(
                f"rtt min/avg/max/mdev = {min(rtts):.3f}/{mean:.3f}/{max(rtts):.3f}/{mdev:.3f} ms"
            )
        return "\n".join(lines) + "\n"

    async def run(self, argv: Sequence[str], timeout: float) -> CommandResult:
        self.write_proc()
        if argv[0] == "iw":
            if not self.c.iw_available:
                raise FileNotFoundError(2, "No such file or directory", "iw")
            if argv[-1] == "link":
                return CommandResult(0, self.render_link())
            return CommandResult(0, "")  # station dump not needed: link has every field
        if argv[0] == "ping":
            count = int(argv[argv.index("-c") + 1])
            out = self.render_ping(argv[-1], count)
            return CommandResult(0 if "0 received" not in out else 1, out)
        raise FileNotFoundError(2, "No such file or directory", argv[0])

    async def resolve(self, name: str) -> None:
        if not self.c.connected:
            raise OSError(-3, "Temporary failure in name resolution")
        await asyncio.sleep(self.c.dns_ms / 1000)

    async def http_probe(self, url: str, timeout: float) -> int:
        if not self.c.connected:
            raise OSError(101, "Network is unreachable")
        return 204 if self.c.portal_ok else 302
