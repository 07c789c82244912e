"""What the central side accepts from the broker, and why it refuses the rest.

Every message ends as one of three answers, never as an exception (ingest, alerts and display
all call ``check``, and one retained message that raised would stop them at every start):

- ``Accepted``: the envelope with every field this side knows; the names of the fields it does
  not know (a newer gateway's additions, DESIGN.md "Compatibility") ride along in ``unknown``
  to be counted, and are otherwise ignored;
- ``Ignored``: a message of a kind this side does not know (a newer gateway's), kept out of
  the store, counted by kind; or an empty payload clearing a retained alert (``kind`` None);
- ``Rejected``: one reason from ``REASONS`` so it can be counted (DESIGN.md: "rejects (and
  counts) any message whose topic and envelope disagree on site or room, whose ``v`` it does
  not know, or that fails validation; it never stops for one").

Strict where it protects the store: a timestamp without a zone, ahead of ``now`` by more than
``Window.ahead`` or older than ``Window.max_age`` (the longest outage an outbox holds: a
backlog days old is legitimate), locker and slot ids that are no ids, integers beyond int64
and non-finite floats each have their own reason.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final, Literal

import pydantic_core
from pydantic import ValidationError

from gateway import const
from gateway.errors import TopicError
from gateway.models import ID_PATTERN, INT64_MAX, parse_envelope
from gateway.topics import Topic

Reason = Literal[
    "oversized",
    "bad_topic",
    "not_json",
    "too_deep",
    "unknown_version",
    "invalid",
    "topic_mismatch",
    "bad_id",
    "ts_no_zone",
    "ts_future",
    "ts_too_old",
    "unstorable_number",
]
REASONS: tuple[Reason, ...] = (
    "oversized",
    "bad_topic",
    "not_json",
    "too_deep",
    "unknown_version",
    "invalid",
    "topic_mismatch",
    "bad_id",
    "ts_no_zone",
    "ts_future",
    "ts_too_old",
    "unstorable_number",
)

_SLUG = re.compile(const.SLUG_PATTERN)
_ID = re.compile(ID_PATTERN)
#: What a kind this side does not know may be called and still be counted as one.
_NEW_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
#: pydantic error types that have a reason of their own (the rest is "invalid").
_ERROR_REASONS: Final[dict[str, Reason]] = {
    "ts_no_zone": "ts_no_zone",
    "ts_future": "ts_future",
    "ts_too_old": "ts_too_old",
    "finite_number": "unstorable_number",
}
_ID_FIELDS: Final = frozenset({"site", "room", "locker", "slot"})


@dataclass(frozen=True)
class Window:
    """How far a reading's ``ts`` may lie from the central clock.

    ``max_age``: the longest outage an outbox can hold (200 000 messages are about two weeks
    of a room); older readings would land behind the retention's rollups. ``ahead``: clock
    skew a gateway may have (NTP-synced Pis are within seconds).
    """

    max_age: timedelta = timedelta(days=31)
    ahead: timedelta = timedelta(minutes=5)


DEFAULT_WINDOW: Final = Window()


@dataclass(frozen=True)
class Accepted:
    topic: Topic
    envelope: Any  # one of the envelope models
    #: Names this side does not know, e.g. ``("data.new_sensor", "origin")``: dropped, counted.
    unknown: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ignored:
    """Not a reading this side stores; ``kind`` is the unknown kind (None: an empty payload)."""

    kind: str | None


@dataclass(frozen=True)
class Rejected:
    reason: Reason
    detail: str


def check(
    topic: str,
    payload: bytes | bytearray,
    prefix: str = const.TOPIC_PREFIX,
    *,
    now: datetime | None = None,
    window: Window | None = None,
) -> Accepted | Ignored | Rejected:
    """Accept, ignore or reject with a reason; never raises. ``now`` (aware) defaults to the
    system clock: services with an injected clock pass theirs. Without a ``window`` only the
    models' own bounds apply (zone, years 2000-2099): a simulation at 600x speed sends
    readings hours ahead, so each service sets its window from its config."""
    if len(payload) > const.MAX_PAYLOAD_BYTES:
        return Rejected("oversized", f"{len(payload)} bytes > {const.MAX_PAYLOAD_BYTES}")
    parsed = (
        _topic(topic, prefix) if len(topic) <= _CACHED_TOPIC_LEN else _read_topic(topic, prefix)
    )
    if not isinstance(parsed, Topic):
        return parsed
    if not payload:
        return Ignored(None)
    unknown: list[str] = []
    try:
        env = parse_envelope(payload, unknown)  # the common case: valid, parsed once
    except ValidationError as exc:
        return _refusal(payload, exc)
    if (env.site, env.room, env.kind) != (parsed.site, parsed.room, parsed.kind):
        return Rejected(
            "topic_mismatch",
            f"topic says {parsed.site}/{parsed.room}/{parsed.kind}, "
            f"envelope says {env.site}/{env.room}/{env.kind}",
        )
    if window is not None:
        late = _outside(env, now or datetime.now(UTC), window)
        if late is not None:
            return late
    return Accepted(parsed, env, tuple(unknown))


#: A gateway's topics repeat with every reading, so their verdicts are kept (bounded: at most
#: this many, each no longer than any valid topic, whatever senders invent).
_CACHED_TOPICS: Final = 8192
_CACHED_TOPIC_LEN: Final = 512


def _read_topic(topic: str, prefix: str) -> Topic | Ignored | Rejected:
    """The topic, or what to answer for the message without reading its payload."""
    try:
        parsed = Topic.parse(topic, prefix)
    except TopicError as exc:
        kind = _new_kind(topic, prefix)
        return Ignored(kind) if kind is not None else Rejected("bad_topic", str(exc))
    bad_level = _bad_level(parsed)
    if bad_level is not None:
        return Rejected(*bad_level)
    return parsed


_topic = functools.lru_cache(maxsize=_CACHED_TOPICS)(_read_topic)


def _new_kind(topic: str, prefix: str) -> str | None:
    """The kind of a well-formed topic whose kind this side does not know, else None."""
    if not topic.startswith(prefix + "/"):
        return None
    levels = topic[len(prefix) + 1 :].split("/")
    if len(levels) < 3 or not all(_SLUG.fullmatch(lv) for lv in levels[:2]):
        return None
    kind = levels[2]
    if kind in const.KINDS or not _NEW_KIND.fullmatch(kind):
        return None
    return kind


def _bad_level(topic: Topic) -> tuple[Reason, str] | None:
    """``Topic`` matches with ``re.match`` and "$", which lets a trailing newline through."""
    for name, value in (("site", topic.site), ("room", topic.room)):
        if not _SLUG.fullmatch(value):
            return "bad_topic", f"{name} {value!r:.80} is not a slug"
    if topic.sub is not None and not _ID.fullmatch(topic.sub):
        return "bad_id", f"{topic.kind} id {topic.sub!r:.80} is not an id"
    return None


def _outside(env: Any, now: datetime, window: Window) -> Rejected | None:  # noqa: ANN401
    """``ts`` within the window; ``started`` and ``since`` (both "when it began") not ahead."""
    latest = now + window.ahead
    if env.ts > latest:
        return Rejected("ts_future", f"ts {env.ts.isoformat()} is ahead of {now.isoformat()}")
    if env.ts < now - window.max_age:
        return Rejected("ts_too_old", f"ts {env.ts.isoformat()} is older than {window.max_age}")
    # the fields, not getattr: a model without one raises inside pydantic, 5 us a message
    fields = env.data.__dict__
    began = fields.get("started") or fields.get("since")
    if began is not None and began > latest:
        return Rejected("ts_future", f"data: {began.isoformat()} is ahead of {now.isoformat()}")
    return None


def _refusal(payload: bytes | bytearray, exc: ValidationError) -> Rejected:
    """Why a payload failed, in the order a sender would fix it."""
    first = exc.errors()[0]
    if first["type"] == "json_invalid":
        msg = str(first.get("ctx", {}).get("error", first["msg"]))
        reason: Reason = "too_deep" if "recursion limit" in msg else "not_json"
        return Rejected(reason, msg[:200])
    # not json.loads: it recurses, and a document 30 000 deep would raise RecursionError
    try:
        raw = pydantic_core.from_json(payload)
    except ValueError as err:  # pydantic read it; kept so that no path can raise
        return Rejected("not_json", f"{err}"[:200])
    if isinstance(raw, dict):
        version = raw.get("v")
        if type(version) is not int or version not in const.SUPPORTED_VERSIONS:
            return Rejected("unknown_version", f"v={version!r:.40}")
    where = ".".join(str(p) for p in first["loc"])
    return Rejected(_reason(first), f"{where}: {first['msg']}"[:200])


def _reason(error: Any) -> Reason:  # noqa: ANN401 - pydantic's ErrorDetails
    kind = error["type"]
    if kind in _ERROR_REASONS:
        return _ERROR_REASONS[kind]
    if kind == "less_than_equal" and error.get("ctx", {}).get("le") == INT64_MAX:
        return "unstorable_number"
    loc = error["loc"]
    if kind == "string_pattern_mismatch" and loc and loc[-1] in _ID_FIELDS:
        return "bad_id"
    return "invalid"


@dataclass
class UnknownNames:
    """Counts of unknown fields per (kind, name) and of unknown kinds, for metrics.

    The names come from the senders, so at most ``max_names`` distinct ones are kept; the
    rest is counted under ``OTHER`` (a gateway inventing a name per message must not grow
    memory or /metrics). Names are cut to 64 characters.
    """

    OTHER: ClassVar[str] = "_other"
    max_names: int = 200
    fields: dict[tuple[str, str], int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)

    def count(self, result: Accepted | Ignored | Rejected) -> None:
        if isinstance(result, Accepted):
            kind = result.envelope.kind
            for name in result.unknown:
                self._bump(self.fields, (kind, name[:64]), (kind, self.OTHER))
        elif isinstance(result, Ignored) and result.kind is not None:
            self._bump(self.kinds, result.kind[:64], self.OTHER)

    def _bump(self, counts: dict[Any, int], key: object, other: object) -> None:
        if key not in counts and len(self.fields) + len(self.kinds) >= self.max_names:
            key = other
        counts[key] = counts.get(key, 0) + 1
