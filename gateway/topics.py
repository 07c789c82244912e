"""Topics are a validated type (as in aiomqtt's ``topic.py``): built and parsed in one place.

``{prefix}/<site>/<room>/<kind>[/<sub>]`` where ``sub`` is the locker id or the alert rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway import const
from gateway.errors import TopicError

_SLUG = re.compile(const.SLUG_PATTERN)
#: Locker ids and alert rules: one topic level, no wildcards, short and readable.
_SUB = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


def check_prefix(prefix: str) -> str:
    """A prefix is one or more plain topic levels (no wildcards, no empty level)."""
    levels = prefix.split("/")
    if not prefix or any(not lv or "+" in lv or "#" in lv or "\0" in lv for lv in levels):
        raise TopicError(f"topic prefix {prefix!r} must be plain levels like 'learnroom/v1'")
    return prefix


@dataclass(frozen=True, slots=True)
class Topic:
    """One gateway topic. ``str(topic)`` is what goes on the wire."""

    prefix: str
    site: str
    room: str
    kind: str
    sub: str | None = None

    def __post_init__(self) -> None:
        check_prefix(self.prefix)
        for name, value in (("site", self.site), ("room", self.room)):
            if not _SLUG.fullmatch(value):
                raise TopicError(
                    f"{name} {value!r} is not a slug: use lower-case letters, digits and "
                    "dashes, starting with a letter or digit, at most 63 characters"
                )
        if self.kind not in const.KINDS:
            raise TopicError(f"unknown kind {self.kind!r}; known: {', '.join(const.KINDS)}")
        needs_sub = self.kind in const.SUBTOPIC_KINDS
        if needs_sub and (self.sub is None or not _SUB.fullmatch(self.sub)):
            raise TopicError(
                f"kind {self.kind!r} needs one more level (locker id or rule) of letters, "
                f"digits, '_' or '-', got {self.sub!r}"
            )
        if not needs_sub and self.sub is not None:
            raise TopicError(f"kind {self.kind!r} takes no sub-topic, got {self.sub!r}")

    def __str__(self) -> str:
        base = f"{self.prefix}/{self.site}/{self.room}/{self.kind}"
        return base if self.sub is None else f"{base}/{self.sub}"

    @property
    def live(self) -> bool:
        """Whether the newest message on this topic is published retained."""
        return self.kind in const.LIVE_KINDS

    @classmethod
    def parse(cls, topic: str, prefix: str = const.TOPIC_PREFIX) -> Topic:
        """Parse a wire topic; raises ``TopicError`` saying what is wrong."""
        if not topic.startswith(prefix + "/"):
            raise TopicError(f"topic {topic[:200]!r} does not start with {prefix + '/'!r}")
        rest = topic[len(prefix) + 1 :].split("/")
        if len(rest) not in (3, 4):
            raise TopicError(
                f"topic {topic[:200]!r} must be {prefix}/<site>/<room>/<kind>[/<locker|rule>]"
            )
        sub = rest[3] if len(rest) == 4 else None
        return cls(prefix, rest[0], rest[1], rest[2], sub)


def room_filter(prefix: str, site: str = "+", room: str = "+") -> str:
    """Subscription filter for every topic of the matching rooms."""
    return f"{check_prefix(prefix)}/{site}/{room}/#"
