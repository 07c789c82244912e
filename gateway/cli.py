"""``learnroom``: one console script, one sub-command per role (DESIGN.md "CLI")."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from gateway import __version__
from gateway.agent.config import load_room_config
from gateway.config import load_toml, parse_mqtt_url, state_home
from gateway.errors import ConfigError, LearnroomError

if TYPE_CHECKING:
    from gateway.central.config import CentralConfig

_LOGGER = logging.getLogger("gateway")

#: The extras of pyproject.toml and the modules each brings. The plain install is the agent
#: (what a Pi needs); a command of another role without its extra says which one to install.
EXTRA_MODULES: dict[str, frozenset[str]] = {
    "central": frozenset(
        {
            "influxdb_client",
            "prometheus_client",
            "fastapi",
            "starlette",
            "uvicorn",
            "jinja2",
            "icalendar",
            "recurring_ical_events",
            "cryptography",
            "tomli_w",
        }
    ),
    "demo": frozenset({"rich", "amqtt"}),
}
#: The extra each command needs beyond the plain install.
COMMAND_EXTRA: dict[str, str] = {
    "ingest": "central",
    "alerts": "central",
    "display": "central",
    "provision": "central",
    "demo": "demo",
}


def _missing_extra(command: str, exc: ModuleNotFoundError) -> str | None:
    """The install hint when ``exc`` is a package of the command's extra, else None (a bug)."""
    extra = COMMAND_EXTRA.get(command)
    top = (exc.name or "").split(".")[0]
    if extra is None:
        return None
    # demo includes central: a demo without fastapi needs the demo extra all the same
    wanted = EXTRA_MODULES[extra] | (EXTRA_MODULES["central"] if extra == "demo" else set())
    if top not in wanted:
        return None
    return (
        f"learnroom {command}: needs the {extra!r} extra (Python package {top!r} is not "
        f"installed); install it with: pip install 'learnroom[{extra}]'"
    )


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log-level",
        default=os.environ.get("LEARNROOM_LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging threshold (default INFO, or $LEARNROOM_LOG_LEVEL)",
    )


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="learnroom",
        description="Edge IoT for public learning rooms: lockers, occupancy, Wi-Fi and air.",
    )
    parser.add_argument("--version", action="version", version=f"learnroom {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    agent = sub.add_parser("agent", help="run a room gateway: read sources, publish over MQTT")
    agent.add_argument("-c", "--config", type=Path, help="room config (TOML)")
    agent.add_argument("--simulate", action="store_true", help="simulated hardware, no Pi needed")
    agent.add_argument("--site", help="site slug (with --simulate and no config)")
    agent.add_argument("--room", help="room slug (with --simulate and no config)")
    agent.add_argument("--mqtt", metavar="URL", help="mqtt://[user:pass@]host[:port] or mqtts://")
    agent.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    agent.add_argument("--seed", default="1", help="simulation seed (same seed, same day)")
    agent.add_argument(
        "--start", type=datetime.fromisoformat, help="simulated start time (ISO 8601, with zone)"
    )
    agent.add_argument("--state-dir", type=Path, help="where the outbox lives (simulation)")
    agent.add_argument(
        "--advertise",
        action=argparse.BooleanOptionalAction,
        help="announce this gateway over mDNS (default: agent.advertise for a real room; "
        "never for --simulate, so a demo on a school laptop announces no rooms on the LAN)",
    )
    _add_common(agent)

    demo = sub.add_parser("demo", help="everything on this machine with simulated rooms")
    demo.add_argument("--rooms", type=int, default=6, help="simulated rooms (default 6)")
    demo.add_argument("--sites", type=int, default=2, help="sites the rooms are spread over")
    demo.add_argument("--mqtt-port", type=int, default=1883, help="embedded broker port")
    demo.add_argument("--speed", type=float, default=60.0, help="simulated seconds per second")
    demo.add_argument("--seed", default="1")
    demo.add_argument("--duration", type=float, help="stop after this many seconds")
    demo.add_argument("--no-table", action="store_true", help="log instead of the live table")
    demo.add_argument("--port", type=int, default=8080, help="resident display port (default 8080)")
    demo.add_argument(
        "--influx",
        metavar="URL",
        help="write to this InfluxDB (http://host:port?db=learnroom); default: start influxd "
        "from PATH in a temporary directory when it is installed",
    )
    demo.add_argument(
        "--broker",
        choices=["auto", "mosquitto", "amqtt"],
        default="auto",
        help="embedded broker: Mosquitto when installed (auto), or amqtt in process",
    )
    _add_common(demo)

    _add_central_commands(sub)

    _add_provision(sub)

    schema = sub.add_parser("schema", help="print the JSON Schema of the MQTT envelope")
    schema.add_argument("--indent", type=int, default=2)

    check = sub.add_parser("check-config", help="validate a config file; errors name the field")
    check.add_argument("file", type=Path)

    disc = sub.add_parser("discover", help="list learnroom gateways on this LAN (mDNS)")
    disc.add_argument("--timeout", type=float, default=3.0)
    disc.add_argument("--json", action="store_true", help="machine-readable output")
    disc.add_argument("--interface", action="append", help="IP address to listen on (repeatable)")

    pseudo = sub.add_parser(
        "pseudonym", help="the pseudonym of a badge ID, for the lockers' allow list"
    )
    pseudo.add_argument("badge_id", help="the badge ID as the reader types it")
    pseudo.add_argument("-c", "--config", type=Path, help="room config holding the site secret")
    return parser


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def cmd_schema(args: argparse.Namespace) -> int:
    from gateway.models import envelope_json_schema  # noqa: PLC0415

    print(json.dumps(envelope_json_schema(), indent=args.indent))
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """Room configs have a [room] section; anything else is read as a central config."""
    from gateway.agent.config import parse_room_config  # noqa: PLC0415
    from gateway.central.config import parse_central  # noqa: PLC0415

    path: Path = args.file
    try:
        raw = load_toml(path)
        if "room" in raw:
            config = parse_room_config(raw, str(path))
            what = f"room config for {config.room.site}/{config.room.room}"
        else:
            central = parse_central(raw, str(path))
            what = "central config" + ("" if central.influx else " (no [influx] section)")
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        print(f"{path}: {len(exc.problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{path}: OK ({what})")
    return 0


def cmd_pseudonym(args: argparse.Namespace) -> int:
    from gateway.agent.sources.badge import pseudonym_for  # noqa: PLC0415

    secret = os.environ.get("LEARNROOM_SITE_SECRET")
    if args.config is not None:
        secret = load_room_config(args.config).privacy.site_secret or secret
    if not secret:
        print(
            "no site secret: set LEARNROOM_SITE_SECRET or privacy.site_secret in -c FILE",
            file=sys.stderr,
        )
        return 2
    print(pseudonym_for(args.badge_id, secret.encode()))
    return 0


def cmd_discover(args: argparse.Namespace) -> int:
    from gateway import const  # noqa: PLC0415
    from gateway.agent.discovery import browse  # noqa: PLC0415

    found = asyncio.run(browse(const.MDNS_GATEWAY_TYPE, args.timeout, args.interface))
    if args.json:
        print(json.dumps([dataclasses.asdict(f) for f in found], indent=2))
        return 0
    if not found:
        print(f"no learnroom gateways answered within {args.timeout:.0f} s")
        return 0
    print(f"{'site/room':40} {'address':22} version")
    for f in found:
        where = f"{f.properties.get('site', '?')}/{f.properties.get('room', '?')}"
        addr = f"{f.addresses[0] if f.addresses else '?'}:{f.port}"
        print(f"{where:40} {addr:22} {f.properties.get('version', '?')}")
    return 0


def _install_stop(stop: object) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)  # type: ignore[arg-type]


def cmd_agent(args: argparse.Namespace) -> int:
    from gateway.agent.build import build_agent, simulated_room_config  # noqa: PLC0415

    if args.config is not None:
        config = load_room_config(args.config)
    elif args.simulate and args.site and args.room:
        config = simulated_room_config(args.site, args.room)
    else:
        print(
            "learnroom agent needs -c room.toml, or --simulate --site S --room R --mqtt URL",
            file=sys.stderr,
        )
        return 2
    if args.mqtt:
        config = config.model_copy(update={"mqtt": parse_mqtt_url(args.mqtt, config.mqtt)})
    advertise = config.agent.advertise and not args.simulate
    if args.advertise is not None:
        advertise = args.advertise
    config = config.model_copy(
        update={"agent": config.agent.model_copy(update={"advertise": advertise})}
    )
    if args.state_dir is not None or (args.config is None and args.simulate):
        state = args.state_dir or state_home()
        path = state / f"outbox-{config.room.site}-{config.room.room}.sqlite"
        config = config.model_copy(
            update={"outbox": config.outbox.model_copy(update={"path": path})}
        )

    async def main() -> None:
        async with build_agent(
            config, simulate=args.simulate, speed=args.speed, seed=args.seed, start=args.start
        ) as agent:
            _install_stop(agent.stop)
            await agent.run()

    asyncio.run(main())
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    import threading  # noqa: PLC0415

    from gateway.central.ingest.service import Ingest  # noqa: PLC0415
    from gateway.central.writers import writer_from_config  # noqa: PLC0415

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
    # 1 when a loop died or hangs: systemd or compose start a fresh process
    return Ingest(config, writer_from_config(config.influx)).run(stop)


def cmd_alerts(args: argparse.Namespace) -> int:
    from gateway.central.alerts.service import build_service  # noqa: PLC0415

    config = _central_config(args)
    if args.alertmanager:
        section = config.alerts.model_validate(
            config.alerts.model_dump() | {"alertmanager_url": args.alertmanager}
        )
        config = config.model_copy(update={"alerts": section})
    service = build_service(config)

    async def main() -> None:
        stop = asyncio.Event()
        _install_stop(stop.set)
        await service.run(stop)

    asyncio.run(main())
    return 0


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
    asyncio.run(serve(config, args.config.parent if args.config else Path.cwd()))
    return 0


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


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo  # noqa: PLC0415

    return asyncio.run(
        run_demo(
            rooms=args.rooms,
            sites=args.sites,
            mqtt_port=args.mqtt_port,
            speed=args.speed,
            seed=args.seed,
            duration=args.duration,
            table=not args.no_table,
            broker=args.broker,
            influx=args.influx,
            port=args.port,
        )
    )


COMMANDS = {
    "agent": cmd_agent,
    "demo": cmd_demo,
    "ingest": cmd_ingest,
    "alerts": cmd_alerts,
    "influx-setup": cmd_influx_setup,
    "display": cmd_display,
    "provision": cmd_provision,
    "schema": cmd_schema,
    "check-config": cmd_check_config,
    "discover": cmd_discover,
    "pseudonym": cmd_pseudonym,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if hasattr(args, "log_level"):
        _setup_logging(args.log_level)
    try:
        return COMMANDS[args.command](args)
    except ModuleNotFoundError as exc:
        hint = _missing_extra(args.command, exc)
        if hint is None:
            raise
        print(hint, file=sys.stderr)
        return 1
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 1
    except LearnroomError as exc:
        print(f"learnroom {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
