"""Running the display: the hub with its calendars, the app, uvicorn."""

from __future__ import annotations

import logging
from pathlib import Path

import uvicorn

from gateway.central.config import CentralConfig
from gateway.central.display import Hub, create_app

_LOGGER = logging.getLogger(__name__)


def build_hub(config: CentralConfig, base_dir: Path) -> Hub:
    """The hub; ``base_dir`` resolves calendar files named relative to the config file."""
    del base_dir  # calendars: see gateway.central.calendars
    return Hub(config)


async def serve(config: CentralConfig, base_dir: Path) -> None:
    hub = build_hub(config, base_dir)
    d = config.display
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(hub),
            host=d.host,
            port=d.port,
            log_level="warning",
            proxy_headers=True,
        )
    )
    _LOGGER.info("display on http://%s:%d/", d.host, d.port)
    await server.serve()
