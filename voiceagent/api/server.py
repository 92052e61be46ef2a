"""Run the API under uvicorn: what ``voiceagent serve`` calls.

SIGTERM (what an orchestrator sends before it stops a pod) drains instead of cutting calls: the
node takes no new calls (offers get 503, ``/readyz`` says 503 so the load balancer moves on) and
exits once its live calls have ended, or after ``drain_timeout_s``. A second SIGTERM, or Ctrl-C,
ends the remaining calls at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn
from fastapi import FastAPI

from voiceagent.api.app import create_app
from voiceagent.calllog import open_call_log
from voiceagent.config import Settings

if TYPE_CHECKING:
    from voiceagent.bridges.webrtc import WebRTCService

__all__ = ["serve"]

logger = logging.getLogger(__name__)


class _DrainingServer(uvicorn.Server):
    """uvicorn's server with SIGTERM meaning "finish the calls, then stop"."""

    def __init__(
        self, config: uvicorn.Config, app: FastAPI, webrtc: WebRTCService | None, timeout_s: float
    ) -> None:
        super().__init__(config)
        self._app = app
        self._webrtc = webrtc
        self._timeout_s = timeout_s
        self._drain_requested = False
        self._drain_task: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self._webrtc is not None and not self._drain_requested:
            # Runs inside a signal handler: only set a flag; on_tick starts the drain on the loop.
            self._drain_requested = True
            return
        if sig == signal.SIGTERM:
            # Handled here, not re-raised by uvicorn after shutdown: a process killed by its own
            # SIGTERM would skip the call-log flush that follows the server.
            self.should_exit = True
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._drain_requested and self._drain_task is None:
            self._drain_task = asyncio.create_task(self._drain(), name="serve:drain")
        return await super().on_tick(counter)

    async def _drain(self) -> None:
        assert self._webrtc is not None  # handle_exit drains only with a WebRTC service
        self._webrtc.drain()
        self._app.state.draining = True
        live = len(self._webrtc.calls)
        logger.warning("SIGTERM: draining, %d live call(s), up to %.0f s", live, self._timeout_s)
        if await self._webrtc.wait_idle(self._timeout_s):
            logger.warning("drained: no live calls left, stopping")
        else:
            logger.warning("drain timeout: ending %d live call(s)", len(self._webrtc.calls))
        self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._drain_task is not None and not self._drain_task.done():
            self._drain_task.cancel()
            await asyncio.gather(self._drain_task, return_exceptions=True)
        await super().shutdown(sockets)


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
            app = create_app(settings, webrtc=service)
            config = uvicorn.Config(
                app,
                host=host or settings.api_bind_host,
                port=port or settings.api_bind_port,
                log_config=None,  # keep the logging the CLI set up
                proxy_headers=True,
                server_header=False,
            )
            await _DrainingServer(config, app, service, settings.drain_timeout_s).serve()

    asyncio.run(main())
