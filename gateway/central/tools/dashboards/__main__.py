"""``python -m gateway.central.tools.dashboards OUT_DIR`` writes the dashboards' JSON."""

from gateway.central.tools.dashboards.build import main

raise SystemExit(main())
