"""Parsers of what the Wi-Fi tools print: ``iw``, ``ping`` (iputils, BusyBox), ``/proc``.

Pure functions over text, tested on outputs people published for real drivers
(``tests/fixtures/wifi``); the source (``wifi``) runs the tools and judges the figures.
"""

from __future__ import annotations

import re
import socket
import statistics
from dataclasses import dataclass

__all__ = [
    "LinkInfo",
    "PingResult",
    "ProcWireless",
    "parse_default_gateway",
    "parse_iw_link",
    "parse_ping",
    "parse_proc_wireless",
    "parse_station_dump",
]


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
