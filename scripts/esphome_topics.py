"""Lists the MQTT topics that ESPHome nodes publish, from `esphome config` output.

Run by scripts/esphome-check --topics with the interpreter of the separate ESPHome virtualenv
(it needs PyYAML and esphome's own helpers, which are not in the project's environment):

    python scripts/esphome_topics.py BOARD.yaml=CONFIG_OUTPUT.yaml ...

CONFIG_OUTPUT.yaml is what `esphome config BOARD.yaml` printed: the validated configuration
with all defaults filled in. Prints one JSON object keyed by node name.

The topic forms are ESPHome's (esphome/components/mqtt/mqtt_component.cpp):
  state      <topic_prefix>/<component>/<object_id>/state
  command    <topic_prefix>/<component>/<object_id>/command
  discovery  <discovery_prefix>/<component>/<sanitized node name>/<object_id>/config
with object_id = sanitize(snake_case(entity name)) (esphome/core/entity_base.cpp).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml
from esphome.helpers import sanitize, snake_case

# Entity domains that ESPHome's MQTT component publishes.
MQTT_DOMAINS = (
    "alarm_control_panel", "binary_sensor", "button", "climate", "cover", "date", "datetime",
    "event", "fan", "light", "lock", "number", "select", "sensor", "switch", "text",
    "text_sensor", "time", "update", "valve",
)  # fmt: skip
# Domains whose entities also subscribe to a command topic.
COMMAND_DOMAINS = frozenset(MQTT_DOMAINS) - {"binary_sensor", "sensor", "text_sensor", "event"}


class _TolerantLoader(yaml.SafeLoader):
    """Reads `esphome config` output: !secret and !lambda values become plain strings."""


def _any_tag(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> object:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_TolerantLoader.add_multi_constructor("!", _any_tag)


def _entities(domain: str, item: dict[str, Any]) -> list[dict[str, Any]]:
    """The entity of a platform item, or the sub-entities (scd4x: co2, temperature...)."""
    if "name" in item:
        return [item]
    return [v for v in item.values() if isinstance(v, dict) and "name" in v]


def node_topics(board_file: str, config: dict[str, Any]) -> dict[str, Any]:
    node = config["esphome"]["name"]
    project = config["esphome"].get("project", {}).get("name", "")
    mqtt = config["mqtt"]
    prefix = mqtt["topic_prefix"]
    discovery_prefix = mqtt["discovery_prefix"] if mqtt.get("discovery", True) else None
    entities = []
    for domain in MQTT_DOMAINS:
        for item in config.get(domain) or []:
            for entity in _entities(domain, item):
                if entity.get("internal", False):
                    continue
                object_id = sanitize(snake_case(entity["name"]))
                entities.append(
                    {
                        "component": domain,
                        "object_id": object_id,
                        "name": entity["name"],
                        "state_topic": f"{prefix}/{domain}/{object_id}/state",
                        "command_topic": (
                            f"{prefix}/{domain}/{object_id}/command"
                            if domain in COMMAND_DOMAINS
                            else None
                        ),
                        "discovery_topic": (
                            f"{discovery_prefix}/{domain}/{sanitize(node)}/{object_id}/config"
                            if discovery_prefix
                            else None
                        ),
                        "unit_of_measurement": entity.get("unit_of_measurement"),
                        "device_class": entity.get("device_class"),
                        "state_class": entity.get("state_class"),
                        "entity_category": entity.get("entity_category") or None,
                    }
                )
    return {
        "file": board_file,
        "node": node,
        "role": project.partition(".")[2],
        "topic_prefix": prefix,
        "status_topic": (mqtt.get("birth_message") or {}).get("topic"),
        "log_topic": (mqtt.get("log_topic") or {}).get("topic"),
        "entities": entities,
    }


def main(argv: list[str]) -> int:
    nodes: dict[str, Any] = {}
    for arg in argv:
        board_file, _, output = arg.partition("=")
        config = yaml.load(Path(output).read_text(encoding="utf-8"), Loader=_TolerantLoader)  # noqa: S506
        topics = node_topics(board_file, config)
        nodes[topics["node"]] = topics
    json.dump(nodes, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
