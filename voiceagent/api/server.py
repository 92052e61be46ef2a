"""Run the API under uvicorn: what ``voiceagent serve`` calls."""

from __future__ import annotations

import asyncio

import uvicorn

from voiceagent.api.app import create_app
from voiceagent.calllog import open_call_log
from voiceagent.config import Settings

__all__ = ["serve"]


def serve(
    settings: Settings, *, host: str | None = None, port: int | None = None, webrtc: bool = True
) -> None:
    """Serve the REST API and browser calls until interrupted.

    ``host``/``port`` override ``api_bind_host/port``. With ``webrtc`` the speech models load first
    (a few seconds) and ``/call`` answers browser calls, each written to the call log.
    """

    async def main() -> None:
        from voiceagent.bridges.webrtc import WebRTCService

        async with open_call_log(settings) as call_log:
            service = await WebRTCService.load(settings, call_log=call_log) if webrtc else None
            config = uvicorn.Config(
                create_app(settings, webrtc=service),
                host=host or settings.api_bind_host,
                port=port or settings.api_bind_port,
                log_config=None,  # keep the logging the CLI set up
                proxy_headers=True,
                server_header=False,
            )
            await uvicorn.Server(config).serve()

    asyncio.run(main())
