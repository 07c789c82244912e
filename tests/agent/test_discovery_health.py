"""mDNS advertisement and discovery; the health source's figures."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from gateway import const
from gateway.agent.discovery import Advertiser, BrokerNotFoundError, browse, find_broker
from gateway.agent.sources.health import HealthSource
from gateway.clock import ScaledClock
from tests.sink import Recorder

LOOPBACK = ["127.0.0.1"]


async def test_gateway_is_found_with_site_room_and_version():
    adv = Advertiser("site-a", "room-7", "9.9.9", interfaces=LOOPBACK, addresses=LOOPBACK, port=1)
    task = asyncio.create_task(adv.run())
    try:
        found = []
        for _ in range(5):
            found = await browse(const.MDNS_GATEWAY_TYPE, 1.0, LOOPBACK)
            if found:
                break
        (gw,) = [f for f in found if f.properties.get("room") == "room-7"]
        assert gw.properties == {"site": "site-a", "room": "room-7", "version": "9.9.9"}
        assert "127.0.0.1" in gw.addresses
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_broker_found_over_mdns_and_clear_error_when_none():
    import socket

    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    try:
        await find_broker(1.0, LOOPBACK)
    except BrokerNotFoundError as exc:
        assert 'instead of "auto"' in str(exc)
    else:
        raise AssertionError("no broker advertised, yet one was found")
    import uuid

    azc = AsyncZeroconf(interfaces=LOOPBACK)
    name = f"test-broker-{uuid.uuid4().hex[:8]}"  # unique: other runs may share the loopback
    info = AsyncServiceInfo(
        const.MDNS_MQTT_TYPE,
        f"{name}.{const.MDNS_MQTT_TYPE}",
        addresses=[socket.inet_aton("127.0.0.1")],
        port=18830,
        server=f"{name}.local.",
    )
    try:
        await azc.async_register_service(info)
        assert await find_broker(1.5, LOOPBACK) == ("127.0.0.1", 18830)
        await azc.async_unregister_service(info)
    finally:
        await azc.async_close()


async def test_health_reports_outbox_faults_and_cpu_temperature(tmp_path: Path):
    temp = tmp_path / "temp"
    temp.write_text("48312\n")
    source = HealthSource(
        1.0,
        ScaledClock(speed=100),
        outbox_stats=lambda: (12, 3),
        faults=lambda: ["environment"],
        disk_path=tmp_path,
        cpu_temp_file=temp,
    )
    sink = Recorder()
    task = asyncio.create_task(source.run(sink))
    while not sink.data:
        await asyncio.sleep(0.01)
    task.cancel()
    health = sink.data[0]
    assert health.outbox_depth == 12  # type: ignore[union-attr]
    assert health.outbox_dropped == 3  # type: ignore[union-attr]
    assert health.faults == ["environment"]  # type: ignore[union-attr]
    assert health.cpu_temp_c == 48.3  # type: ignore[union-attr]
    assert health.mem_rss_mb is not None and health.mem_rss_mb > 5  # type: ignore[union-attr]
    assert health.disk_free_mb is not None and health.disk_free_mb > 0  # type: ignore[union-attr]
    (tmp_path / "temp").unlink()
    assert source.sample().cpu_temp_c is None, "no thermal zone: null, not a crash"
