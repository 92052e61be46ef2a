"""The worker's network face: WebSocket ``/v1/realtime`` plus health, load and metrics over plain HTTP.

One ``websockets`` server serves both: plain GETs are answered in ``process_request`` before any
handshake, so there is no second framework on the audio path. Routes::

    GET /healthz        200 while the process runs (liveness)
    GET /readyz         200 when it takes sessions; 503 while draining (readiness)
    GET /load           JSON: worker_id, engine, capacity, active, free, draining
    GET /metrics        Prometheus text format
    WS  /v1/realtime    the speech-session protocol (bearer token required when one is set)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Sequence
from dataclasses import replace
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from voiceagent.engines.base import SpeechEngine
from voiceagent.engines.events import SessionConfig
from voiceagent.engines.realtime.codec import WireSession
from voiceagent.errors import VoiceAgentError
from voiceagent.worker.auth import presented_tokens, token_ok
from voiceagent.worker.metrics import CONTENT_TYPE_LATEST, WorkerMetrics
from voiceagent.worker.registry import WorkerInfo, WorkerRegistry
from voiceagent.worker.session import WorkerSession

__all__ = ["REALTIME_PATH", "WorkerServer", "advertised_host"]

logger = logging.getLogger(__name__)

REALTIME_PATH = "/v1/realtime"
# Audio deltas are small; a client that sends more than this in one message is broken.
_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class WorkerServer:
    """Serves sessions of one engine, at most ``capacity`` at once, and keeps the registry informed."""

    def __init__(
        self,
        engine: SpeechEngine,
        *,
        capacity: int,
        token: str | None = None,
        worker_id: str = "worker",
        registry: WorkerRegistry | None = None,
        heartbeat_s: float = 1.0,
        url: str | None = None,
        default_sample_rate: int = 24000,
        close_engine: bool = True,
    ) -> None:
        self.engine = engine
        self.capacity = capacity
        self.worker_id = worker_id
        self.metrics = WorkerMetrics(capacity=capacity, engine=engine.name)
        self.draining = False
        # Most sessions ever open at once: what a test checks against capacity.
        self.peak = 0
        self.url = url
        self._token = token
        self._close_engine = close_engine
        self._registry = registry
        self._heartbeat_s = heartbeat_s
        self._default = WireSession(SessionConfig(default_sample_rate, default_sample_rate))
        self._sessions: set[WorkerSession] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._server: Server | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def active(self) -> int:
        return len(self._sessions)

    # ---- lifecycle --------------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 picks a free port); returns the port."""
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._process_request,
            select_subprotocol=_select_subprotocol,
            max_size=_MAX_MESSAGE_BYTES,
            compression=None,
            ping_interval=20,
            ping_timeout=20,
        )
        bound = int(self._server.sockets[0].getsockname()[1])
        if self.url is None:
            self.url = f"ws://{advertised_host(host)}:{bound}{REALTIME_PATH}"
        return bound

    async def join_pool(self) -> None:
        """Announce this worker in the registry (if any) and keep announcing it every heartbeat."""
        if self._registry is not None and self._heartbeat is None:
            await self._announce()
            self._heartbeat = asyncio.create_task(self._heartbeats(), name=f"{self.worker_id}:heartbeat")

    async def drain(self, timeout_s: float) -> bool:
        """Take no new sessions and wait for the open ones to end; True if they all did in time."""
        self.draining = True
        self.metrics.draining.set(1)
        if self._registry is not None:
            with contextlib.suppress(VoiceAgentError):
                await self._announce()
        logger.info("draining: %d session(s) open", self.active, extra={"worker_id": self.worker_id})
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def aclose(self) -> None:
        """Stop heartbeats, leave the registry, close every connection and (if it owns it) the engine."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        if self._registry is not None:
            with contextlib.suppress(VoiceAgentError):
                await self._registry.withdraw(self.worker_id)
            await self._registry.aclose()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._close_engine:
            await self.engine.aclose()

    # ---- registry ---------------------------------------------------------------------------------

    def _info(self) -> WorkerInfo:
        return WorkerInfo(self.worker_id, self.url or "", self.capacity, self.engine.name)

    async def _announce(self) -> None:
        assert self._registry is not None
        await self._registry.announce(self._info(), active=self.active, draining=self.draining)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            try:
                await self._announce()
            except VoiceAgentError as exc:
                logger.warning("heartbeat failed: %s", exc, extra={"worker_id": self.worker_id})

    # ---- HTTP -------------------------------------------------------------------------------------

    def load(self) -> dict[str, object]:
        """What ``GET /load`` returns."""
        return {
            "worker_id": self.worker_id,
            "engine": self.engine.name,
            "capacity": self.capacity,
            "active": self.active,
            "peak": self.peak,
            "free": 0 if self.draining else max(0, self.capacity - self.active),
            "draining": self.draining,
        }

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path.rstrip("/") or "/"
        if path == REALTIME_PATH:
            return self._admit(conn, request)
        if path == "/healthz":
            return _reply(conn, HTTPStatus.OK, "ok\n")
        if path == "/readyz":
            if self.draining:
                return _reply(conn, HTTPStatus.SERVICE_UNAVAILABLE, "draining\n")
            return _reply(conn, HTTPStatus.OK, "ready\n")
        if path == "/load":
            return _reply(conn, HTTPStatus.OK, json.dumps(self.load()) + "\n", "application/json")
        if path == "/metrics":
            self.metrics.active.set(self.active)
            return _reply(conn, HTTPStatus.OK, self.metrics.render().decode(), CONTENT_TYPE_LATEST)
        return _reply(conn, HTTPStatus.NOT_FOUND, "not found\n")

    def _admit(self, conn: ServerConnection, request: Request) -> Response | None:
        offered = _offered_subprotocols(request.headers)
        if not token_ok(self._token, presented_tokens(request.path, request.headers, offered)):
            self.metrics.sessions.labels("unauthorized").inc()
            return _reply(conn, HTTPStatus.UNAUTHORIZED, "a valid bearer token is required\n")
        if self.draining or self.active >= self.capacity:
            self.metrics.sessions.labels("refused").inc()
            why = "draining" if self.draining else "at capacity"
            return _reply(conn, HTTPStatus.SERVICE_UNAVAILABLE, f"worker {why}\n")
        return None

    # ---- WebSocket --------------------------------------------------------------------------------

    async def _handle(self, conn: ServerConnection) -> None:
        assert conn.request is not None
        if self.draining or self.active >= self.capacity:
            # Several handshakes raced for the last slot: the loser hears it as "try again later".
            self.metrics.sessions.labels("refused").inc()
            await conn.close(1013, "worker at capacity")
            return
        query = parse_qs(urlsplit(conn.request.path).query)
        session = WorkerSession(conn, self.engine, self.metrics, self._wire_for(query))
        self._sessions.add(session)
        self.peak = max(self.peak, self.active)
        self._idle.clear()
        self.metrics.sessions.labels("accepted").inc()
        self.metrics.active.set(self.active)
        try:
            if self._registry is not None:
                with contextlib.suppress(VoiceAgentError):
                    await self._registry.claim(
                        self.worker_id, query.get("placement", [None])[0], active=self.active
                    )
            await session.run()
        finally:
            self._sessions.discard(session)
            self.metrics.active.set(self.active)
            if not self._sessions:
                self._idle.set()
            if self._registry is not None:
                with contextlib.suppress(VoiceAgentError):
                    await self._registry.set_active(self.worker_id, self.active)

    def _wire_for(self, query: dict[str, list[str]]) -> WireSession:
        model = query.get("model", [self._default.model])[0]
        conversation = query.get("conversation_id", [None])[0]
        config = replace(self._default.config, conversation_id=conversation)
        return replace(self._default, config=config, model=model)


def advertised_host(bind_host: str) -> str:
    """The name media nodes can reach a worker by: the bind address, or the host name for a wildcard."""
    return socket.gethostname() if bind_host in ("", "0.0.0.0", "::") else bind_host


def _reply(
    conn: ServerConnection, status: HTTPStatus, body: str, content_type: str | None = None
) -> Response:
    response = conn.respond(status, body)
    if content_type is not None:
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = content_type
    return response


def _offered_subprotocols(headers: Headers) -> list[str]:
    return [p.strip() for value in headers.get_all("Sec-WebSocket-Protocol") for p in value.split(",")]


def _select_subprotocol(conn: ServerConnection, subprotocols: Sequence[Subprotocol]) -> Subprotocol | None:
    # Browsers offer "realtime" next to the key subprotocol and require the server to pick one.
    return Subprotocol("realtime") if "realtime" in subprotocols else None
