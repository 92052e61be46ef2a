"""The FastAPI app factory: nothing is built at import; the lifespan opens and closes the stores."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from voiceagent import __version__
from voiceagent.api import agents, callers, calls, health, outbound_calls
from voiceagent.api.deps import ApiState, require
from voiceagent.api.errors import install_error_handlers
from voiceagent.api.outbound_calls import HttpCallPlacer
from voiceagent.bridges.sip.edge import start_sip_edge
from voiceagent.bridges.webrtc import WebRTCService, webrtc_router
from voiceagent.bridges.webrtc.live import WebRTCLiveSource
from voiceagent.config import Settings
from voiceagent.console import install as console_install
from voiceagent.console.sip import SipControlLiveSource
from voiceagent.media.live import LiveCallRegistry
from voiceagent.memory import SessionMemory, build_memory
from voiceagent.store import create_engine, session_factory
from voiceagent.store.apikeys import Scope
from voiceagent.store.engine import display_url
from voiceagent.webhooks import routes as webhook_routes
from voiceagent.webhooks.dispatcher import start_dispatcher

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

MemoryFactory = Callable[[Settings], SessionMemory]


def create_app(
    settings: Settings,
    *,
    memory_factory: MemoryFactory = build_memory,
    webrtc: WebRTCService | None = None,
    live: LiveCallRegistry | None = None,
) -> FastAPI:
    """The REST API over the call log, agents and session memory.

    The lifespan creates the database engine and the memory store and closes both on shutdown;
    ``memory_factory`` lets tests (or an embedding process) choose the memory store. With
    ``webrtc``, browser calls are served at ``/call`` and the service is closed on shutdown. The
    admin console is served at ``/console``; its live-calls page lists ``live`` and the browser calls.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        try:
            memory = memory_factory(settings)
            try:
                app.state.api = ApiState(
                    settings=settings, engine=engine, sessions=session_factory(engine), memory=memory
                )
                logger.info("API started on %s", display_url(settings.database_url))
                # The webhook dispatcher sends from the outbox for as long as the API runs.
                app.state.webhooks = await start_dispatcher(settings, app.state.api.sessions)
                app.state.sip_edge = None
                try:
                    # The SIP edge (Kamailio) lives as long as the API when this process owns it.
                    app.state.sip_edge = await start_sip_edge(settings)
                    yield
                finally:
                    if app.state.sip_edge is not None:
                        await app.state.sip_edge.aclose()
                    if app.state.webhooks is not None:
                        await app.state.webhooks.aclose()
                    if webrtc is not None:
                        await webrtc.aclose()
            finally:
                await memory.aclose()
        finally:
            await engine.dispose()

    development = settings.environment == "development"
    app = FastAPI(
        title="voiceagent",
        version=__version__,
        summary="The call log, agent definitions and caller memory of a voiceagent deployment.",
        lifespan=lifespan,
        docs_url="/docs" if development else None,
        redoc_url="/redoc" if development else None,
    )
    install_error_handlers(app)
    for module in (health, calls, agents, callers):
        app.include_router(module.router)
    app.include_router(webhook_routes.router)
    # Outbound SIP calls go to the media processes' control endpoints (docs/sip.md).
    app.include_router(outbound_calls.router)
    app.state.sip_placer = HttpCallPlacer(settings.sip_control_urls) if settings.sip_control_urls else None
    if webrtc is not None:
        app.include_router(webrtc_router(webrtc, list_dependencies=[require(Scope.CALLS_READ)]))
    live = live if live is not None else LiveCallRegistry()
    if webrtc is not None:
        live.attach(WebRTCLiveSource(webrtc))
    if settings.sip_control_urls:
        live.attach(SipControlLiveSource(settings.sip_control_urls))
    console_install.install_console(app, live=live)
    return app
