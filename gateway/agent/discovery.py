"""mDNS (zeroconf): gateways advertise themselves; agents may find their broker.

- ``_learnroom._tcp.local.``: one per gateway, TXT ``site``, ``room``, ``version``; lets IT
  support list the gateways of a LAN (``learnroom discover``) without a spreadsheet.
- ``_mqtt._tcp.local.``: the usual advertisement of a broker; ``mqtt.host = "auto"`` uses it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from gateway import const
from gateway.errors import LearnroomError

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Found:
    name: str
    addresses: tuple[str, ...]
    port: int
    properties: dict[str, str]


def _text(props: dict[bytes, bytes | None]) -> dict[str, str]:
    return {
        k.decode(errors="replace"): (v or b"").decode(errors="replace") for k, v in props.items()
    }


class Advertiser:
    """Registers this gateway while ``run`` runs; unregisters on the way out."""

    def __init__(
        self,
        site: str,
        room: str,
        version: str,
        *,
        port: int = 0,
        interfaces: Sequence[str] | None = None,
        addresses: Sequence[str] | None = None,
    ) -> None:
        self.info = AsyncServiceInfo(
            const.MDNS_GATEWAY_TYPE,
            f"{site}-{room}.{const.MDNS_GATEWAY_TYPE}",
            addresses=[socket.inet_aton(a) for a in addresses] if addresses else None,
            port=port,
            properties={"site": site, "room": room, "version": version},
            server=f"learnroom-{site}-{room}.local.",
        )
        self._interfaces = list(interfaces) if interfaces else None

    async def run(self) -> None:
        azc = AsyncZeroconf(
            interfaces=self._interfaces or _all_interfaces(), ip_version=IPVersion.V4Only
        )
        try:
            await azc.async_register_service(self.info, allow_name_change=True)
        except OSError as exc:
            # no multicast here (a container, a locked-down unit): the gateway works without
            _LOGGER.warning(
                "cannot advertise over mDNS (%s); `learnroom discover` will not list us", exc
            )
            await azc.async_close()
            return
        _LOGGER.info("advertising %s over mDNS", self.info.name)
        try:
            await asyncio.Event().wait()
        finally:
            await azc.async_unregister_service(self.info)
            await azc.async_close()


def _all_interfaces() -> Sequence[str]:
    from zeroconf import InterfaceChoice  # noqa: PLC0415

    return InterfaceChoice.All  # type: ignore[return-value]


async def browse(
    service_type: str, timeout: float = 3.0, interfaces: Sequence[str] | None = None
) -> list[Found]:
    """Everything answering for ``service_type`` within ``timeout`` seconds."""
    azc = AsyncZeroconf(interfaces=interfaces or _all_interfaces(), ip_version=IPVersion.V4Only)
    names: set[str] = set()

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Added:
            names.add(name)

    browser = AsyncServiceBrowser(azc.zeroconf, [service_type], handlers=[on_change])
    try:
        await asyncio.sleep(timeout)
        found = []
        for name in sorted(names):
            info = AsyncServiceInfo(service_type, name)
            if await info.async_request(azc.zeroconf, 1500):
                found.append(
                    Found(
                        name=name,
                        addresses=tuple(info.parsed_addresses()),
                        port=info.port or 0,
                        properties=_text(info.properties),
                    )
                )
        return found
    finally:
        await browser.async_cancel()
        await azc.async_close()


async def find_broker(
    timeout: float = 5.0, interfaces: Sequence[str] | None = None
) -> tuple[str, int]:
    """The first MQTT broker advertised on the LAN (``mqtt.host = "auto"``)."""
    for found in await browse(const.MDNS_MQTT_TYPE, timeout, interfaces):
        if found.addresses and found.port:
            return found.addresses[0], found.port
    raise BrokerNotFoundError(
        f"no MQTT broker answered on mDNS ({const.MDNS_MQTT_TYPE}) within {timeout:.0f} s; "
        'set mqtt.host to the broker\'s name instead of "auto"'
    )


class BrokerNotFoundError(LearnroomError, LookupError):
    pass
