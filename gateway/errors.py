"""One error hierarchy, so callers can catch ours without catching everyone's.

Specific errors also subclass the matching builtin (as gpiozero's ``exc.py`` does), so code
that only knows ``ValueError`` still handles a bad topic.
"""

from __future__ import annotations


class LearnroomError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(LearnroomError, ValueError):
    """A configuration file or flag is wrong; the message names file and field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class TopicError(LearnroomError, ValueError):
    """An MQTT topic does not follow ../shared/DESIGN.md."""


class PayloadError(LearnroomError, ValueError):
    """An MQTT payload is not a valid envelope."""


class SensorError(LearnroomError, OSError):
    """A sensor did not answer, or answered nonsense; the source reports null, never crashes."""


class OutboxError(LearnroomError, RuntimeError):
    """The on-disk outbox cannot be opened or written."""


class BrokerAuthError(LearnroomError, PermissionError):
    """The broker refused our credentials: retrying quickly will not help."""
