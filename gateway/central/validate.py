"""What the central side accepts from the broker, and why it refuses the rest.

Every refusal has one reason from ``REASONS`` so it can be counted (DESIGN.md: "rejects (and
counts) any message whose topic and envelope disagree on site or room, whose ``v`` it does
not know, or that fails validation; it never stops for one").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from gateway import const
from gateway.errors import TopicError
from gateway.models import parse_envelope
from gateway.topics import Topic

Reason = Literal[
    "oversized", "bad_topic", "not_json", "unknown_version", "invalid", "topic_mismatch"
]
REASONS: tuple[Reason, ...] = (
    "oversized",
    "bad_topic",
    "not_json",
    "unknown_version",
    "invalid",
    "topic_mismatch",
)


@dataclass(frozen=True)
class Accepted:
    topic: Topic
    envelope: Any  # one of the envelope models


@dataclass(frozen=True)
class Rejected:
    reason: Reason
    detail: str


def check(
    topic: str, payload: bytes | bytearray, prefix: str = const.TOPIC_PREFIX
) -> Accepted | Rejected | None:
    """Accept, reject with a reason, or ``None`` for a message that is not a reading at all
    (an empty retained payload clearing an alert)."""
    if len(payload) > const.MAX_PAYLOAD_BYTES:
        return Rejected("oversized", f"{len(payload)} bytes > {const.MAX_PAYLOAD_BYTES}")
    try:
        parsed = Topic.parse(topic, prefix)
    except TopicError as exc:
        return Rejected("bad_topic", str(exc))
    if not payload:
        return None
    try:
        env = parse_envelope(payload)  # the common case: valid, parsed once
    except ValidationError as exc:
        return _refusal(payload, exc)
    if (env.site, env.room, env.kind) != (parsed.site, parsed.room, parsed.kind):
        return Rejected(
            "topic_mismatch",
            f"topic says {parsed.site}/{parsed.room}/{parsed.kind}, "
            f"envelope says {env.site}/{env.room}/{env.kind}",
        )
    return Accepted(parsed, env)


def _refusal(payload: bytes | bytearray, exc: ValidationError) -> Rejected:
    """Why a payload failed, in the order a sender would fix it."""
    try:
        raw = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as err:
        return Rejected("not_json", f"{err}"[:200])
    if isinstance(raw, dict):
        version = raw.get("v")
        if type(version) is not int or version not in const.SUPPORTED_VERSIONS:
            return Rejected("unknown_version", f"v={version!r:.40}")
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return Rejected("invalid", f"{where}: {first['msg']}"[:200])
