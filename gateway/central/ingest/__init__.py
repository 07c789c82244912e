"""``learnroom ingest``: MQTT to InfluxDB, acknowledged only once written (see ``service``)."""

from gateway.central.ingest.service import Ingest

__all__ = ["Ingest"]
