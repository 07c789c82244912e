"""The central side: one package per service, the operator tools, and what they share.

- ``ingest``: MQTT to InfluxDB, acknowledged after the write;
- ``alerts``: rules to Alertmanager, retained MQTT topics and InfluxDB;
- ``display``: the resident display (page, JSON API, live updates, booking calendars);
- ``tools``: what an operator runs now and then (provision, influx-setup, dashboards).

Shared by the services, and importing none of them: ``config`` (the central config file),
``validate`` (the envelope check every consumer runs), ``mapping`` (readings to InfluxDB
points), ``writers`` (InfluxDB 1.x and 2.x/3.x), ``thresholds`` (the alert rules' settings,
also drawn on the dashboards) and ``hours`` (opening hours).
"""
