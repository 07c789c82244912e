"""The four Grafana dashboards, generated: ``panels`` (what every dashboard is built from),
``dashboard`` (variables, links, layout), one module per dashboard (``rooms``, ``room``, ``it``,
``display``) and ``build`` (the files).

Regenerate with ``python -m gateway.central.tools.dashboards grafana/dashboards``.

The JSON under ``grafana/dashboards/`` is what users import (and what Grafana's file provider
loads); it is written by ``build`` and a test holds the committed files equal to its output.
Every query is InfluxQL against the provisioned data source ``learnroom-influxdb`` (DESIGN.md:
1.x answers it, 2.x and 3.x through DBRP mappings), on the default retention policy, with the
names of DESIGN.md's "InfluxDB schema" (``gateway/central/mapping.py``). The ingest's own health
is not in InfluxDB: its panels ask the optional Prometheus data source ``learnroom-prometheus``
for the ingest's ``/metrics`` (``gateway/central/ingest/service.py``).

Each InfluxQL target also carries, outside the JSON, the columns its panel reads
(``Dashboard.expects``), so the tests can run every query against a real database and check
that the panel would have something to show.
"""

from gateway.central.tools.dashboards.build import dashboards, file_name, main, render
from gateway.central.tools.dashboards.dashboard import Dashboard
from gateway.central.tools.dashboards.display import display_dashboard
from gateway.central.tools.dashboards.panels import (
    ALERTMANAGER_UID,
    DISPLAY_UID,
    GRID_COLUMNS,
    INFLUX_UID,
    IT_UID,
    PROMETHEUS_UID,
    ROOM_UID,
    ROOMS_UID,
    SCHEMA_VERSION,
)
from gateway.central.tools.dashboards.room import room_dashboard
from gateway.central.tools.dashboards.rooms import rooms_dashboard

__all__ = [
    "ALERTMANAGER_UID",
    "DISPLAY_UID",
    "GRID_COLUMNS",
    "INFLUX_UID",
    "IT_UID",
    "PROMETHEUS_UID",
    "ROOMS_UID",
    "ROOM_UID",
    "SCHEMA_VERSION",
    "Dashboard",
    "dashboards",
    "display_dashboard",
    "file_name",
    "main",
    "render",
    "room_dashboard",
    "rooms_dashboard",
]
