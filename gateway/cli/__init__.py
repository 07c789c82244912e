"""``learnroom``: one console script, one sub-command per role (DESIGN.md "CLI")."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from gateway import __version__
from gateway.agent.config import load_room_config
from gateway.cli.central import (
    _add_central_commands,
    _add_provision,
    _add_report,
    cmd_alerts,
    cmd_display,
    cmd_influx_setup,
    cmd_ingest,
    cmd_provision,
    cmd_report,
)
from gateway.cli.common import _add_common, _install_stop, _setup_logging
from gateway.config import load_toml, parse_mqtt_url, state_home
from gateway.errors import ConfigError, LearnroomError

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
            "matplotlib",
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
    "report": "central",
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
    _add_report(sub)

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
    "report": cmd_report,
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
