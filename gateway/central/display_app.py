"""Running the display: the hub with its calendars, the app, uvicorn."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from gateway.central.config import CentralConfig
from gateway.central.display import Hub, create_app

_LOGGER = logging.getLogger(__name__)


def build_hub(config: CentralConfig, base_dir: Path) -> Hub:
    """The hub; ``base_dir`` resolves calendar files named relative to the config file."""
    del base_dir  # calendars: see gateway.central.calendars
    return Hub(config)


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside a program that handles its own signals (the demo): set
    ``should_exit`` to stop it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def server_for(hub: Hub, *, embedded: bool = False) -> uvicorn.Server:
    d = hub.settings
    config = uvicorn.Config(
        create_app(hub), host=d.host, port=d.port, log_level="warning", proxy_headers=True
    )
    return EmbeddedServer(config) if embedded else uvicorn.Server(config)


async def serve(config: CentralConfig, base_dir: Path) -> None:
    server = server_for(build_hub(config, base_dir))
    _LOGGER.info("display on http://%s:%d/", config.display.host, config.display.port)
    await server.serve()
