"""The alert rules' settings: thresholds, hysteresis and durations, with their defaults.

They are config (``[alerts.rules]``, per-site and per-room overrides) and also drawn on the
Grafana dashboards, so they live below the alert service, which evaluates them
(``gateway.central.alerts.rules``). Defaults follow DESIGN.md "Thresholds" (CO2 guide values
of the Umweltbundesamt).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gateway import const
from gateway.config import _Config

__all__ = ["RULE_NAMES", "Rule", "Rules", "Severity"]

Severity = Literal["info", "warning", "critical"]


class Rule(_Config):
    enabled: bool = True
    severity: Severity = "warning"
    #: Bad this long before the alert fires.
    for_s: float = Field(default=0.0, ge=0)
    #: Good this long before a firing alert resolves.
    clear_for_s: float = Field(default=0.0, ge=0)


class AboveRule(Rule):
    """Bad above ``threshold``; good again only below ``clear``."""

    threshold: float
    clear: float

    @model_validator(mode="after")
    def _hysteresis(self) -> AboveRule:
        if self.clear > self.threshold:
            raise ValueError(f"clear ({self.clear}) must not be above threshold ({self.threshold})")
        return self


class RangeRule(Rule):
    """Bad outside ``low``..``high``; good again only inside ``clear_low``..``clear_high``."""

    low: float
    high: float
    clear_low: float
    clear_high: float

    @model_validator(mode="after")
    def _hysteresis(self) -> RangeRule:
        if not self.low <= self.clear_low <= self.clear_high <= self.high:
            raise ValueError("need low <= clear_low <= clear_high <= high")
        return self


class WifiRule(Rule):
    rssi_below_dbm: float = const.WIFI_RSSI_DEGRADED_DBM
    rssi_clear_dbm: float = const.WIFI_RSSI_DEGRADED_DBM + 3
    loss_above_pct: float = const.WIFI_LOSS_DEGRADED_PCT
    loss_clear_pct: float = const.WIFI_LOSS_DEGRADED_PCT - 2
    dns_above_ms: float = const.WIFI_DNS_DEGRADED_MS
    dns_clear_ms: float = const.WIFI_DNS_DEGRADED_MS - 100
    #: A failing captive-portal check counts as degraded.
    portal: bool = True

    @model_validator(mode="after")
    def _hysteresis(self) -> WifiRule:
        if (
            self.rssi_clear_dbm < self.rssi_below_dbm
            or self.loss_clear_pct > self.loss_above_pct
            or self.dns_clear_ms > self.dns_above_ms
        ):
            raise ValueError("each clear value must lie on the good side of its threshold")
        return self


class SilenceRule(Rule):
    """Bad after ``intervals`` report intervals without the thing it watches."""

    intervals: float = Field(default=const.OFFLINE_AFTER_INTERVALS, gt=0)


class AfterRule(Rule):
    """Bad once a state has lasted ``after_s`` (a door open, a device not charging)."""

    after_s: float = Field(default=0.0, ge=0)


class StuckRule(Rule):
    """CO2 within ``tolerance_ppm`` for ``window_s``: a sensor that needs calibration."""

    window_s: float = Field(default=4 * 3600.0, gt=0)
    tolerance_ppm: float = Field(default=2.0, ge=0)


class FaultRule(Rule):
    """Bad while the gateway's ``health.faults`` lists the fault the rule is named after."""


class DroppingRule(Rule):
    """The gateway's outbox dropped readings; resolves after ``quiet_s`` without new drops."""

    quiet_s: float = Field(default=3600.0, gt=0)


class Rules(_Config):
    gateway_offline: SilenceRule = SilenceRule(severity="critical")
    wifi_degraded: WifiRule = WifiRule(for_s=const.WIFI_DEGRADED_FOR_S)
    co2_ventilate: AboveRule = AboveRule(
        threshold=const.CO2_FINE_BELOW_PPM, clear=const.CO2_FINE_BELOW_PPM - 50, for_s=120
    )
    co2_critical: AboveRule = AboveRule(
        severity="critical",
        threshold=const.CO2_CRITICAL_ABOVE_PPM,
        clear=const.CO2_CRITICAL_ABOVE_PPM - 100,
        for_s=60,
    )
    temperature: RangeRule = RangeRule(
        low=18.0, high=26.0, clear_low=18.5, clear_high=25.5, for_s=600
    )
    humidity: RangeRule = RangeRule(low=25.0, high=70.0, clear_low=27.0, clear_high=68.0, for_s=600)
    locker_door_open: AfterRule = AfterRule(after_s=const.LOCKER_DOOR_OPEN_MAX_S)
    device_overdue: AfterRule = AfterRule()
    device_not_charging: AfterRule = AfterRule(after_s=1800.0, severity="info")
    sensor_stale: SilenceRule = SilenceRule()
    sensor_stuck: StuckRule = StuckRule()
    outbox_filling: AboveRule = AboveRule(threshold=1000, clear=100, for_s=300)
    outbox_dropping: DroppingRule = DroppingRule(severity="critical")
    #: readings lost with a damaged outbox or one rolled back by a power cut (``outbox_lost:N``)
    outbox_lost: DroppingRule = DroppingRule(severity="critical")
    #: the lockers' loans file was unreadable and moved aside: loans may be missing
    loans_file_damaged: FaultRule = FaultRule()
    #: another gateway uses this room's identity (a cloned SD card, a copied config)
    twin_gateway: FaultRule = FaultRule(severity="critical")
    #: the gateway's disk is full: readings go out live but none are kept for an outage
    disk_full: FaultRule = FaultRule(severity="critical")


RULE_NAMES: tuple[str, ...] = tuple(Rules.model_fields)
