"""The central side's sub-commands (DESIGN.md "CLI"): ingest, alerts, display, influx-setup,
provision, report. Each imports its service only when run, so that ``learnroom`` on a Pi
(without the ``central`` extra) starts and says which extra a command needs."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.cli.common import _add_common, _install_stop
from gateway.config import parse_mqtt_url

if TYPE_CHECKING:
    from gateway.central.config import CentralConfig

_LOGGER = logging.getLogger("gateway")


def _add_central(p: argparse.ArgumentParser, *, influx: bool) -> None:
    p.add_argument("-c", "--config", type=Path, help="central config (TOML)")
    p.add_argument(
        "--state-dir",
        type=Path,
        help="where the service keeps its files (default: the config's state_dir, else "
        "$STATE_DIRECTORY, else ~/.local/state/learnroom)",
    )
    p.add_argument("--mqtt", metavar="URL", help="mqtt://[user:pass@]host[:port] or mqtts://")
    if influx:
        p.add_argument(
            "--influx",
            metavar="URL",
            help="http://host:port?db=learnroom (1.x) or http://host:port?org=O&bucket=B "
            "(2.x/3.x, token in $LEARNROOM_INFLUX_TOKEN)",
        )


def _central_config(args: argparse.Namespace) -> CentralConfig:
    """The central config file with the command line's overrides on top."""
    from gateway.central.config import (  # noqa: PLC0415
        CentralMqttSection,
        load_central_config,
        parse_influx_url,
    )

    config = load_central_config(args.config, state_dir=args.state_dir)
    if args.mqtt:
        mqtt = CentralMqttSection.model_validate(
            parse_mqtt_url(args.mqtt, config.mqtt).model_dump() | {"protocol": config.mqtt.protocol}
        )
        config = config.model_copy(update={"mqtt": mqtt})
    if getattr(args, "influx", None):
        influx = parse_influx_url(args.influx, config.influx, os.environ)
        config = config.model_copy(update={"influx": influx})
    return config


def _add_central_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The services of the central side (DESIGN.md "CLI")."""
    ingest = sub.add_parser("ingest", help="central: MQTT to InfluxDB, acknowledged when written")
    _add_central(ingest, influx=True)
    ingest.add_argument(
        "--metrics-port", type=int, help="Prometheus /metrics port (0: off; default 9310)"
    )
    ingest.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="processes (default: 1 a core)"
    )
    _add_common(ingest)

    alerts = sub.add_parser("alerts", help="central: alert rules to Alertmanager, MQTT, InfluxDB")
    _add_central(alerts, influx=True)
    alerts.add_argument("--alertmanager", metavar="URL", help="http://host:9093")
    _add_common(alerts)

    setup = sub.add_parser(
        "influx-setup", help="central: database, retention (90 d raw) and 5-min rollups (2 y)"
    )
    _add_central(setup, influx=True)
    setup.add_argument("--raw-days", type=int, default=90, help="keep raw points (days)")
    setup.add_argument("--rollup-days", type=int, default=730, help="keep 5-min means (days)")
    setup.add_argument(
        "--backfill", action="store_true", help="also roll up the raw points already stored"
    )
    _add_common(setup)

    display = sub.add_parser("display", help="central: resident display, JSON API, live updates")
    _add_central(display, influx=False)
    display.add_argument("--port", type=int, help="HTTP port (default 8080)")
    display.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    _add_common(display)


def _add_provision(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``provision``: add a gateway (the default), or ``--rotate`` or ``--revoke`` it."""
    prov = sub.add_parser(
        "provision", help="central: a gateway's broker credentials, ACL lines and room config"
    )
    prov.add_argument("--site", required=True)
    prov.add_argument("--room", required=True)
    prov.add_argument("--out", type=Path, default=Path("provision"), help="state directory")
    prov.add_argument("--broker-host", default="localhost", help="as the gateways reach it")
    prov.add_argument("--port", type=int, help="broker port for the gateways (8883 with TLS)")
    prov.add_argument("--no-tls", action="store_true", help="plain MQTT (a trusted LAN only)")
    prov.add_argument("--cert", action="store_true", help="also a client certificate")
    prov.add_argument(
        "--server-name",
        action="append",
        default=[],
        help="names and addresses in the broker certificate (repeatable)",
    )
    what = prov.add_mutually_exclusive_group()
    what.add_argument(
        "--revoke", action="store_true", help="remove this gateway and revoke its certificate"
    )
    what.add_argument(
        "--rotate",
        action="store_true",
        help="a new password for this gateway (with --cert also a new certificate)",
    )


def _add_report(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser("report", help="central: a site's weekly report, PDF or HTML")
    _add_central(report, influx=True)
    # --site, --week and --out are checked once the central extra is known to be there
    report.add_argument("--site", action="append", help="site slug (repeatable)")
    report.add_argument("--week", help="ISO week, e.g. 2026-W48")
    report.add_argument("--lang", choices=("de", "en"), default="de")
    report.add_argument("--out", type=Path, help="report.pdf or report.html")
    report.add_argument("--tz", help="days are local days here (default: the display's zone)")
    _add_common(report)


def cmd_ingest(args: argparse.Namespace) -> int:
    import threading  # noqa: PLC0415

    from gateway.central.ingest.workers import run_ingest  # noqa: PLC0415

    config = _central_config(args)
    if args.metrics_port is not None:
        ingest_section = config.ingest.model_copy(update={"metrics_port": args.metrics_port})
        config = config.model_copy(update={"ingest": ingest_section})
    if config.influx is None:
        print(
            "learnroom ingest: no InfluxDB configured; add an [influx] section to the config "
            "or pass --influx http://host:8086?db=learnroom",
            file=sys.stderr,
        )
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # 1 when a loop died or hangs, or a worker ended: systemd or compose start it again
    return run_ingest(config, args.workers, stop)


def cmd_alerts(args: argparse.Namespace) -> int:
    from gateway.central.alerts.service import build_service  # noqa: PLC0415

    config = _central_config(args)
    if args.alertmanager:
        section = config.alerts.model_validate(
            config.alerts.model_dump() | {"alertmanager_url": args.alertmanager}
        )
        config = config.model_copy(update={"alerts": section})
    service = build_service(config)

    async def main() -> int:
        stop = asyncio.Event()
        _install_stop(stop.set)
        return await service.run(stop)

    # 1 when a loop ended or hangs: systemd or compose start a fresh process
    return asyncio.run(main())


def cmd_influx_setup(args: argparse.Namespace) -> int:
    from gateway.central.tools.influx_setup import setup_v1  # noqa: PLC0415

    config = _central_config(args)
    influx = config.influx
    if influx is None:
        print(
            "learnroom influx-setup: no InfluxDB configured; add an [influx] section to the "
            "config or pass --influx http://host:8086?db=learnroom",
            file=sys.stderr,
        )
        return 2
    if influx.version == 2:
        print(
            "learnroom influx-setup: InfluxDB 2.x/3.x buckets, DBRP mappings and the "
            "downsampling task are made with the influx CLI; see "
            "deploy/central/influxdb2-setup.md",
            file=sys.stderr,
        )
        return 2
    for line in setup_v1(
        influx.url,
        influx.db,
        raw_days=args.raw_days,
        rollup_days=args.rollup_days,
        username=influx.username,
        password=influx.password,
        backfill=args.backfill,
    ):
        print(line)
    return 0


def cmd_display(args: argparse.Namespace) -> int:
    from gateway.central.display.app import serve  # noqa: PLC0415

    config = _central_config(args)
    update = {k: v for k, v in (("port", args.port), ("host", args.host)) if v is not None}
    if update:
        section = config.display.model_validate(config.display.model_dump() | update)
        config = config.model_copy(update={"display": section})
    # 1 when a loop died or hangs: systemd or compose start a fresh process
    return asyncio.run(serve(config, args.config.parent if args.config else Path.cwd()))


def cmd_provision(args: argparse.Namespace) -> int:
    from gateway.central.tools.provision import Provisioner  # noqa: PLC0415

    prov = Provisioner(
        args.out,
        broker_host=args.broker_host,
        port=args.port,
        tls=not args.no_tls,
        cert=args.cert,
        server_names=args.server_name,
    )
    if args.revoke:
        lines = prov.revoke(args.site, args.room)
    elif args.rotate:
        lines = prov.rotate(args.site, args.room)
    else:
        lines = prov.add(args.site, args.room)
    for line in lines:
        print(line)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from gateway.central.tools.report.command import run  # noqa: PLC0415

    code, line = run(args, _central_config)
    print(line, file=sys.stderr if code else sys.stdout)
    return code
