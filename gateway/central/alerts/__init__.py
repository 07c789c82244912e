"""``learnroom alerts``: rules over each room's state, to Alertmanager, MQTT and InfluxDB."""

from gateway.central.alerts.service import AlertService, build_service

__all__ = ["AlertService", "build_service"]
