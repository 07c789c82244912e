"""IT support: gateways, their outboxes and temperature, every room's Wi-Fi, locker
problems, active alerts, and the central ingest (its panels ask Prometheus, not InfluxDB)."""

# ruff: noqa: S608 - query text for Grafana, built from this package's constants, never input

from __future__ import annotations

from gateway import const
from gateway.central.tools.dashboards.dashboard import (
    ROOM_VAR,
    SITE_VAR,
    Dashboard,
)
from gateway.central.tools.dashboards.panels import (
    BAD,
    CHARGING,
    CPU_TEMP_BANDS,
    DNS_BANDS,
    DOOR,
    FIRING,
    GOOD,
    INFO,
    IT_UID,
    LOSS_BANDS,
    ONLINE,
    PRESENT,
    ROW_LINK,
    RSSI_BANDS,
    RULES,
    SERIES_LINK,
    WARN,
    WHERE,
    Panel,
    Target,
    band_lines,
    colored_cells,
    column,
    hidden,
    stat,
    table_options,
    thresholds,
    timeseries_options,
)


def it_dashboard() -> Dashboard:
    by_room = 'GROUP BY "site", "room"'
    per_interval = 'GROUP BY time($__interval), "site", "room" fill(none)'
    prom_rooms = 'site=~"$site", room=~"$room"'
    alerts = (
        'SELECT last("firing") AS "firing", last("message") AS "message" FROM "alert" '
        f'WHERE {WHERE}{{cond}} GROUP BY "site", "room", "rule", "severity"'
    )
    firing_only = {
        "id": "filterByValue",
        "options": {
            "type": "include",
            "match": "any",
            "filters": [
                {"fieldName": "firing", "config": {"id": "equal", "options": {"value": True}}}
            ],
        },
    }
    return Dashboard(
        IT_UID,
        "Learning rooms: IT support",
        "For IT support: gateways, their queues and temperature, Wi-Fi of every room, "
        "locker problems, active alerts and the central ingest.",
        [
            Panel(
                "stat",
                "Gateways online",
                "Each room's gateway as it last announced itself: Online, or Offline when "
                "it said goodbye or the broker lost it (MQTT Last Will).",
                [
                    Target(
                        "A",
                        f'SELECT last("online") AS "online" FROM "gateway" WHERE {WHERE} {by_room}',
                        ("online",),
                        alias="$tag_site/$tag_room",
                    )
                ],
                w=12,
                h=6,
                mappings=ONLINE,
                links=SERIES_LINK,
                options=stat(),
            ),
            Panel(
                "table",
                "Last seen",
                "When each gateway last sent its health report (every minute by default), "
                "and how long it has been running. Silent for 3 report intervals: treat it "
                "as offline even if it still says Online.",
                [
                    Target(
                        "A",
                        f'SELECT last("uptime_s") AS "uptime" FROM "gateway" '
                        f"WHERE {WHERE} {by_room}",
                        ("site", "room", "uptime"),
                        fmt="table",
                    )
                ],
                w=12,
                h=6,
                overrides=[
                    column("Time", unit="dateTimeFromNow", displayName="Last seen"),
                    column("uptime", unit="s", displayName="Running for"),
                    column("room", links=ROW_LINK),
                ],
                options=table_options("Last seen"),
            ),
            Panel(
                "timeseries",
                "Outbox depth",
                "Readings a gateway holds because it cannot reach the broker. It should be "
                "0; a rising line means the room's network or the broker is down. The "
                "gateway sends them all once it is back.",
                [
                    Target(
                        "A",
                        f'SELECT max("outbox_depth") AS "depth" FROM "gateway" '
                        f"WHERE {WHERE} {per_interval}",
                        ("depth",),
                        alias="$tag_site/$tag_room",
                    )
                ],
                w=8,
                unit="none",
                bands=thresholds(
                    (None, GOOD),
                    (RULES.outbox_filling.clear, WARN),
                    (RULES.outbox_filling.threshold, BAD),
                ),
                custom=band_lines(),
                defaults={"min": 0, "decimals": 0},
                color_mode="palette-classic",
                options=timeseries_options(),
            ),
            Panel(
                "timeseries",
                "Readings dropped",
                "Readings a gateway had to throw away since it started, because its outbox "
                "was full during a long outage. Anything above 0 is lost data.",
                [
                    Target(
                        "A",
                        f'SELECT max("outbox_dropped") AS "dropped" FROM "gateway" '
                        f"WHERE {WHERE} {per_interval}",
                        ("dropped",),
                        alias="$tag_site/$tag_room",
                    )
                ],
                w=8,
                unit="none",
                bands=thresholds((None, GOOD), (1.0, BAD)),
                custom=band_lines(),
                defaults={"min": 0, "decimals": 0},
                color_mode="palette-classic",
                options=timeseries_options(),
            ),
            Panel(
                "timeseries",
                "Gateway CPU temperature",
                "Temperature of each gateway's processor. A Raspberry Pi slows itself down "
                "from 80 degrees Celsius; above 70 check its case and airflow.",
                [
                    Target(
                        "A",
                        f'SELECT max("cpu_temp_c") AS "cpu" FROM "gateway" '
                        f"WHERE {WHERE} {per_interval}",
                        ("cpu",),
                        alias="$tag_site/$tag_room",
                    )
                ],
                w=8,
                unit="celsius",
                bands=CPU_TEMP_BANDS,
                custom=band_lines(),
                color_mode="palette-classic",
                options=timeseries_options(),
            ),
            Panel(
                "table",
                "Wi-Fi health of every room, worst first",
                f"Per room over the chosen time: the weakest signal (bad below "
                f"{const.WIFI_RSSI_DEGRADED_DBM:.0f} dBm), the worst packet loss (bad above "
                f"{const.WIFI_LOSS_DEGRADED_PCT:.0f} %) and the slowest name lookup (bad above "
                f"{const.WIFI_DNS_DEGRADED_MS:.0f} ms). Weakest signal at the top.",
                [
                    Target(
                        "A",
                        'SELECT min("rssi_dbm") AS "weakest signal", max("loss_pct") AS '
                        '"worst loss", max("dns_ms") AS "slowest lookup", '
                        'mean("rssi_dbm") AS "average signal" '
                        f'FROM "wifi" WHERE {WHERE} {by_room}',
                        ("site", "room", "weakest signal", "worst loss", "slowest lookup"),
                        fmt="table",
                    )
                ],
                w=24,
                custom=colored_cells(),
                overrides=[
                    column("weakest signal", unit="dBm", thresholds=RSSI_BANDS),
                    column("average signal", unit="dBm", thresholds=RSSI_BANDS),
                    column("worst loss", unit="percent", thresholds=LOSS_BANDS),
                    column("slowest lookup", unit="ms", thresholds=DNS_BANDS),
                    column("site", custom_cellOptions={"type": "auto"}),
                    column("room", links=ROW_LINK, custom_cellOptions={"type": "auto"}),
                ],
                transformations=[hidden("Time")],
                options=table_options("weakest signal"),
            ),
            Panel(
                "table",
                "Locker doors",
                f"Each locker's door as last reported. Open longer than "
                f"{const.LOCKER_DOOR_OPEN_MAX_S / 60:.0f} minutes raises an alert: "
                "somebody may have forgotten to close it.",
                [
                    Target(
                        "A",
                        f'SELECT last("open") AS "door" FROM "locker_door" '
                        f'WHERE {WHERE} GROUP BY "site", "room", "locker"',
                        ("site", "room", "locker", "door"),
                        fmt="table",
                    )
                ],
                w=8,
                custom=colored_cells(),
                overrides=[column("Time", unit="dateTimeFromNow", displayName="Since")],
                mappings=DOOR,
                options=table_options("door", desc=True),
            ),
            Panel(
                "table",
                "Locker slots: devices and charging",
                "Every slot: device in it or lent out, and charging or not. A device in "
                "its slot that is not charging (orange) needs its cable or charger checked.",
                [
                    Target(
                        "A",
                        'SELECT last("present") AS "present", last("charging") AS "charging" '
                        f'FROM "locker_slot" WHERE {WHERE} '
                        'GROUP BY "site", "room", "locker", "slot"',
                        ("site", "room", "locker", "slot", "present", "charging"),
                        fmt="table",
                    )
                ],
                w=8,
                custom=colored_cells(),
                overrides=[
                    column("present", mappings=PRESENT, displayName="Device"),
                    column("charging", mappings=CHARGING, displayName="Power"),
                ],
                transformations=[hidden("Time")],
                options=table_options("charging"),
            ),
            Panel(
                "table",
                "Overdue devices",
                "Devices not brought back by their due time, from the alert service "
                "(rule device_overdue). Empty is good.",
                [
                    Target(
                        "A",
                        alerts.format(cond=" AND \"rule\" = 'device_overdue'"),
                        ("room", "rule", "firing", "message"),
                        fmt="table",
                    )
                ],
                w=8,
                custom=colored_cells(),
                mappings=FIRING,
                transformations=[firing_only, hidden("Time", "rule", "severity")],
                options=table_options("room"),
            ),
            Panel(
                "table",
                "Active alerts",
                "What the alert service says is wrong now, with its message; the newest "
                "state of every alert in the chosen time, firing ones only. Alertmanager "
                "(link at the top) sends the same alerts by e-mail or chat.",
                [
                    Target(
                        "A",
                        alerts.format(cond=""),
                        ("site", "room", "rule", "severity", "firing", "message"),
                        fmt="table",
                    )
                ],
                w=24,
                custom=colored_cells(),
                overrides=[
                    column("Time", unit="dateTimeFromNow", displayName="Since"),
                    column(
                        "severity",
                        mappings=[
                            {
                                "type": "value",
                                "options": {
                                    "critical": {"color": BAD, "index": 0},
                                    "warning": {"color": WARN, "index": 1},
                                    "info": {"color": INFO, "index": 2},
                                },
                            }
                        ],
                    ),
                    column("message", custom_cellOptions={"type": "auto"}),
                ],
                mappings=FIRING,
                transformations=[firing_only],
                options=table_options("severity"),
            ),
            Panel(
                "timeseries",
                "Ingest: rejected messages",
                "Messages the central ingest refused, per reason (invalid, not JSON, topic "
                "and content disagree, unknown version, too big). A steady stream from one "
                "reason points at a misconfigured or outdated gateway. Needs the optional "
                "Prometheus data source scraping the ingest's /metrics.",
                [
                    Target(
                        "A",
                        "sum by (reason) "
                        "(increase(learnroom_ingest_messages_rejected_total[$__rate_interval]))",
                        prometheus=True,
                        legend="{{reason}}",
                    )
                ],
                w=8,
                unit="none",
                custom=band_lines(),
                color_mode="palette-classic",
                options=timeseries_options(),
            ),
            Panel(
                "timeseries",
                "Ingest: gaps in the gateways' numbering",
                "Each gateway numbers its messages; this counts numbers never seen per room "
                "(missing now) and over all rooms (lost for good). Missing numbers that stay "
                "mean lost readings. Prometheus data source.",
                [
                    Target(
                        "A",
                        f"max by (site, room) (learnroom_ingest_seq_missing{{{prom_rooms}}})",
                        prometheus=True,
                        legend="{{site}}/{{room}} missing",
                    ),
                    Target(
                        "B",
                        "sum(increase(learnroom_ingest_seq_lost_total[$__rate_interval]))",
                        prometheus=True,
                        legend="lost",
                    ),
                ],
                w=8,
                unit="none",
                custom=band_lines(),
                color_mode="palette-classic",
                options=timeseries_options(),
            ),
            Panel(
                "stat",
                "Ingest: database writer and backlog",
                "Writer: Up while the ingest can write to InfluxDB. Pending: messages "
                "received but not yet written; it grows while the database is down and "
                "empties by itself afterwards. Prometheus data source.",
                [
                    Target(
                        "A",
                        "min(learnroom_ingest_writer_up)",
                        prometheus=True,
                        legend="writer",
                    ),
                    Target(
                        "B",
                        "sum(learnroom_ingest_pending_messages)",
                        prometheus=True,
                        legend="pending",
                    ),
                ],
                w=8,
                bands=thresholds((None, GOOD), (1000.0, WARN)),
                overrides=[
                    {
                        "matcher": {"id": "byFrameRefID", "options": "A"},
                        "properties": [
                            {
                                "id": "mappings",
                                "value": [
                                    {
                                        "type": "value",
                                        "options": {
                                            "0": {"text": "Down", "color": BAD, "index": 0},
                                            "1": {"text": "Up", "color": GOOD, "index": 1},
                                        },
                                    }
                                ],
                            }
                        ],
                    }
                ],
                options=stat(),
            ),
        ],
        [SITE_VAR, ROOM_VAR],
    )
