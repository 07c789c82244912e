"""``learnroom display``: the resident display (page, JSON API, live updates, calendars).

``hub`` keeps every room's view and who listens; ``service`` serves it (pages, API, events);
``loops`` runs the supervised background work and ``health`` says whether it makes progress;
``app`` builds it all from the config and runs it under uvicorn; ``live`` derives one room's
view; ``calendars`` (with ``fetch``) reads bookings.
"""

from gateway.central.display.hub import Hub
from gateway.central.display.service import create_app

__all__ = ["Hub", "create_app"]
