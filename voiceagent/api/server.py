"""Run the API under uvicorn: what ``voiceagent serve`` calls."""

from __future__ import annotations

import uvicorn

from voiceagent.api.app import create_app
from voiceagent.config import Settings

__all__ = ["serve"]


def serve(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """Serve the REST API until interrupted; ``host``/``port`` override ``api_bind_host/port``."""
    uvicorn.run(
        create_app(settings),
        host=host or settings.api_bind_host,
        port=port or settings.api_bind_port,
        log_config=None,  # keep the logging the CLI set up
        proxy_headers=True,
        server_header=False,
    )
