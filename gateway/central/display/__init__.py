"""``learnroom display``: the resident display (page, JSON API, live updates, calendars).

``service`` keeps every room's view and serves it; ``app`` builds it from the config and
runs it under uvicorn; ``live`` derives one room's view; ``calendars`` reads bookings.
"""

from gateway.central.display.service import Hub, create_app

__all__ = ["Hub", "create_app"]
