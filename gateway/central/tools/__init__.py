"""What an operator runs now and then, next to the services: ``provision`` (a gateway's
broker user, ACL and room config), ``influx_setup`` (database, retention, rollups) and
``dashboards`` (the Grafana JSON under ``grafana/dashboards``)."""
