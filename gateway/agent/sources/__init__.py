"""Room sources: one module per device family, each taking its hardware as arguments."""

from gateway.agent.sources.base import Sink, Source

__all__ = ["Sink", "Source"]
