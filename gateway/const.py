"""Constants of the contract (../shared/DESIGN.md) in one place, each with its source."""

from __future__ import annotations

from typing import Final, Literal

#: Topic prefix; configurable per deployment, this is the default.
TOPIC_PREFIX: Final = "learnroom/v1"
#: Envelope versions this code reads and writes.
ENVELOPE_VERSION: Final = 1
SUPPORTED_VERSIONS: Final = frozenset({1})

#: Site and room slugs (DESIGN.md "Names").
SLUG_PATTERN: Final = r"^[a-z0-9][a-z0-9-]{0,62}$"

Kind = Literal[
    "status", "occupancy", "environment", "wifi", "lockers", "events", "health", "alerts"
]
KINDS: Final[tuple[Kind, ...]] = (
    "status",
    "occupancy",
    "environment",
    "wifi",
    "lockers",
    "events",
    "health",
    "alerts",
)
#: Kinds whose newest reading is published retained ("live: yes" in DESIGN.md).
LIVE_KINDS: Final = frozenset({"occupancy", "environment", "wifi", "lockers", "health"})
#: Kinds whose topic has one more level: the locker id or the alert rule.
SUBTOPIC_KINDS: Final = frozenset({"lockers", "alerts"})

#: Largest payload a gateway sends or the central side accepts (bytes). Mosquitto's
#: default message_size_limit is far larger; this keeps a broken sender from filling memory.
MAX_PAYLOAD_BYTES: Final = 64 * 1024

# Thresholds (DESIGN.md "Thresholds"): CO2 guide values of the Umweltbundesamt's indoor air
# committee (Ad-hoc-AG Innenraumrichtwerte, 2008) for classrooms.
CO2_FINE_BELOW_PPM: Final = 1000.0
CO2_CRITICAL_ABOVE_PPM: Final = 2000.0
OCCUPANCY_HOLD_S: Final = 600.0
WIFI_RSSI_DEGRADED_DBM: Final = -75.0
WIFI_LOSS_DEGRADED_PCT: Final = 5.0
WIFI_DNS_DEGRADED_MS: Final = 500.0
WIFI_DEGRADED_FOR_S: Final = 300.0
OFFLINE_AFTER_INTERVALS: Final = 3
LOCKER_DOOR_OPEN_MAX_S: Final = 120.0

# Physical ranges a reading must lie in; outside is a sensor fault, never a value.
CO2_RANGE_PPM: Final = (0.0, 40000.0)  # SCD4x measures 0-40000 ppm
TEMPERATURE_RANGE_C: Final = (-40.0, 125.0)  # SHT4x/BME280 operating range
HUMIDITY_RANGE_PCT: Final = (0.0, 100.0)
NOISE_RANGE_DBA: Final = (0.0, 140.0)
ILLUMINANCE_RANGE_LUX: Final = (0.0, 200000.0)
RSSI_RANGE_DBM: Final = (-120.0, 0.0)

#: mDNS service types (DESIGN.md "Flow"; `_mqtt._tcp` is the common broker advertisement).
MDNS_GATEWAY_TYPE: Final = "_learnroom._tcp.local."
MDNS_MQTT_TYPE: Final = "_mqtt._tcp.local."

DEFAULT_MQTT_PORT: Final = 1883
DEFAULT_MQTTS_PORT: Final = 8883
DEFAULT_DISPLAY_PORT: Final = 8080
