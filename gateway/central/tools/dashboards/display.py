"""The display: a kiosk view for a screen in the entrance, large and high-contrast."""

# ruff: noqa: S608 - query text for Grafana, built from this package's constants, never input

from __future__ import annotations

from gateway.central.tools.dashboards.dashboard import (
    SITE_VAR,
    Dashboard,
)
from gateway.central.tools.dashboards.panels import (
    DISPLAY_UID,
    WHERE_SITE,
    Panel,
    Target,
    bool_map,
    stat,
    thresholds,
)


def display_dashboard() -> Dashboard:
    by_room = 'GROUP BY "room"'
    return Dashboard(
        DISPLAY_UID,
        "Learning rooms: display",
        "A kiosk view for a screen in the entrance: which rooms are free, free seats and "
        "devices, large and high-contrast. Open it with &kiosk in the address.",
        [
            Panel(
                "stat",
                "Free rooms",
                "Green FREE: come in. Dark OCCUPIED: people are working there.",
                [
                    Target(
                        "A",
                        f'SELECT last("occupied") AS "occupied" FROM "occupancy" '
                        f"WHERE {WHERE_SITE} {by_room}",
                        ("occupied",),
                        alias="$tag_room",
                    )
                ],
                w=24,
                h=9,
                mappings=bool_map(("OCCUPIED", "dark-red"), ("FREE", "dark-green")),
                options=stat(big=True),
            ),
            Panel(
                "stat",
                "Free seats",
                "Seats nobody sits on now, per room.",
                [
                    Target(
                        "A",
                        f'SELECT last("seats_free") AS "seats" FROM "occupancy" '
                        f"WHERE {WHERE_SITE} {by_room}",
                        ("seats",),
                        alias="$tag_room",
                    )
                ],
                h=8,
                unit="none",
                bands=thresholds((None, "dark-red"), (1.0, "dark-green")),
                defaults={"decimals": 0},
                options=stat(big=True),
            ),
            Panel(
                "stat",
                "Devices to borrow",
                "Tablets and laptops waiting in the lockers, per room.",
                [
                    Target(
                        "A",
                        'SELECT count("present") AS "devices" FROM ('
                        'SELECT last("present") AS "present" FROM "locker_slot" '
                        f'WHERE {WHERE_SITE} GROUP BY "room", "locker", "slot") '
                        f'WHERE "present" = true AND $timeFilter {by_room}',
                        ("devices",),
                        alias="$tag_room",
                    )
                ],
                h=8,
                unit="none",
                bands=thresholds((None, "dark-red"), (1.0, "dark-green")),
                defaults={"noValue": "0", "decimals": 0},
                options=stat(big=True),
            ),
        ],
        [SITE_VAR],
        time_from="now-1h",
        refresh="30s",
        tags=("learnroom", "kiosk"),
        kiosk=True,
    )
