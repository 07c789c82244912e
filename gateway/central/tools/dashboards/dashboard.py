"""A dashboard around its panels: the template variables, the links between the four
dashboards, the grid layout and the dashboard's own keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gateway.central.tools.dashboards.panels import (
    ALERTMANAGER_UID,
    DISPLAY_UID,
    GRID_COLUMNS,
    INFLUX,
    IT_UID,
    ROOM_UID,
    ROOMS_UID,
    SCHEMA_VERSION,
    Json,
    Panel,
)


def variable(name: str, label: str, query: str, description: str) -> Json:
    return {
        "name": name,
        "label": label,
        "description": description,
        "type": "query",
        "datasource": INFLUX,
        "query": query,
        "definition": query,
        "refresh": 2,  # on time range change: a new room shows up without a reload
        "multi": True,
        "includeAll": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "sort": 1,
        "hide": 0,
    }


SITE_VAR = variable(
    "site",
    "Site",
    'SHOW TAG VALUES FROM "gateway" WITH KEY = "site"',
    "The building (library branch, school); choose one or several.",
)
ROOM_VAR = variable(
    "room",
    "Room",
    'SHOW TAG VALUES FROM "gateway" WITH KEY = "room" WHERE "site" =~ /^$site$/',
    "The learning rooms of the chosen sites; choose one or several.",
)
OPEN_HOURS_VAR: Final[Json] = {
    "name": "open_hours",
    "label": "Opening hours a day",
    "description": "How many hours a day the rooms are open; utilisation is measured against it.",
    "type": "textbox",
    "query": "12",
    "current": {"text": "12", "value": "12"},
    "options": [{"selected": True, "text": "12", "value": "12"}],
    "hide": 0,
}


def nav_links(here: str) -> list[Json]:
    """Links between the dashboards (by uid), keeping the time range and the variables."""
    names = {
        ROOMS_UID: "Room availability",
        ROOM_UID: "Room detail",
        IT_UID: "IT support",
        DISPLAY_UID: "Display",
    }
    links = [
        {
            "title": title,
            "type": "link",
            "url": f"/d/{uid}",
            "icon": "dashboard",
            "keepTime": True,
            "includeVars": True,
            "targetBlank": False,
            "asDropdown": False,
            "tags": [],
            "tooltip": f"Open the {title} dashboard",
        }
        for uid, title in names.items()
        if uid != here
    ]
    if here == IT_UID:
        links.append(
            {
                "title": "Alert groups (Alertmanager)",
                "type": "link",
                "url": f"/alerting/groups?alertmanager={ALERTMANAGER_UID}",
                "icon": "bolt",
                "keepTime": False,
                "includeVars": False,
                "targetBlank": False,
                "asDropdown": False,
                "tags": [],
                "tooltip": "What learnroom alerts has sent to Alertmanager, grouped",
            }
        )
    return links


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    panels: list[Panel]
    variables: list[Json]
    time_from: str = "now-6h"
    refresh: str = "1m"
    tags: tuple[str, ...] = ("learnroom",)
    kiosk: bool = False

    def layout(self) -> list[tuple[Panel, int, int]]:
        """Left to right, top to bottom; a panel that does not fit starts a new line."""
        out: list[tuple[Panel, int, int]] = []
        x = y = line_h = 0
        for panel in self.panels:
            if x + panel.w > GRID_COLUMNS:
                x, y, line_h = 0, y + line_h, 0
            out.append((panel, x, y))
            x += panel.w
            line_h = max(line_h, panel.h)
        return out

    @property
    def expects(self) -> dict[tuple[int, str], tuple[str, ...]]:
        """(panel id, refId) -> the columns that panel reads from the InfluxQL result."""
        return {
            (pid, t.ref): t.expects
            for pid, panel in enumerate(self.panels, start=1)
            for t in panel.targets
            if not t.prometheus
        }

    def json(self) -> Json:
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "editable": not self.kiosk,
            "graphTooltip": 1,
            "liveNow": False,
            "timezone": "browser",
            "time": {"from": self.time_from, "to": "now"},
            "timepicker": {"hidden": self.kiosk},
            "refresh": self.refresh,
            "fiscalYearStartMonth": 0,
            "weekStart": "monday",
            "annotations": {"list": []},
            "templating": {"list": self.variables},
            "links": nav_links(self.uid),
            "panels": [p.json(i, x, y) for i, (p, x, y) in enumerate(self.layout(), start=1)],
        }
