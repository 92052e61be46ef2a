"""The realtime engine: speech sessions served by a model worker (or any Realtime server) over WebSocket.

With ``realtime_url`` set, every call goes to that server. Otherwise calls are placed through the
worker pool's Redis registry (:class:`voiceagent.worker.WorkerRegistry`): the least-loaded live
worker gets the call, and a call whose worker dies is placed again on another one
(:class:`~voiceagent.engines.realtime.session.RealtimeSession` restores it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

from voiceagent.engines.events import SessionConfig
from voiceagent.engines.realtime.session import RealtimeSession
from voiceagent.errors import ConfigError, EngineError, NoWorkerError

if TYPE_CHECKING:
    from voiceagent.config import Settings
    from voiceagent.worker.registry import WorkerRegistry

__all__ = ["RealtimeEngine"]

logger = logging.getLogger(__name__)

_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# Without a pool there is one server to retry: wait a little longer each time.
_RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0)


class RealtimeEngine:
    """Implements :class:`voiceagent.engines.SpeechEngine` by opening one WebSocket per call."""

    name = "realtime"

    def __init__(
        self,
        *,
        url: str | None = None,
        token: str | None = None,
        model: str = "voiceagent",
        registry: WorkerRegistry | None = None,
        connect_timeout_s: float = 5.0,
        reconnects: int = 3,
        wire_sample_rate: int | None = None,
    ) -> None:
        if url is None and registry is None:
            raise ConfigError("the realtime engine needs realtime_url, or redis_url for the worker pool")
        self.url = url
        self.model = model
        self.reconnects = reconnects
        # PCM rate on the wire; None: the media layer's (servers that take only 24 kHz need 24000).
        self.wire_sample_rate = wire_sample_rate
        self._token = token
        self._registry = registry
        self.timeout_s = connect_timeout_s
        self._sessions: weakref.WeakSet[RealtimeSession] = weakref.WeakSet()

    @classmethod
    def from_settings(cls, settings: Settings) -> RealtimeEngine:
        """The engine ``engine = "realtime"`` asks for: a fixed server, or the pool in Redis."""
        registry = None
        if settings.realtime_url is None:
            if settings.redis_url is None:
                raise ConfigError(
                    "engine 'realtime' needs realtime_url, or redis_url to place calls via the pool"
                )
            from voiceagent.worker.registry import WorkerRegistry

            registry = WorkerRegistry(
                settings.redis_url, prefix=settings.pool_prefix, ttl_s=settings.worker_ttl_s
            )
        return cls(
            url=settings.realtime_url,
            token=settings.realtime_token,
            model=settings.realtime_model,
            registry=registry,
            connect_timeout_s=settings.realtime_connect_timeout_s,
            reconnects=settings.realtime_reconnects,
            wire_sample_rate=settings.realtime_sample_rate,
        )

    async def open_session(self, config: SessionConfig) -> RealtimeSession:
        """Place the call and open its session; :class:`NoWorkerError` when no worker can take it."""
        if config.conversation_id is None:
            # Globally unique: it keys the conversation in shared session memory across workers.
            config = SessionConfig(
                config.input_sample_rate,
                config.output_sample_rate,
                config.turn_detection,
                config.instructions,
                f"conv_{uuid.uuid4().hex}",
            )
        session = RealtimeSession(self, config)
        await session.open()
        self._sessions.add(session)
        return session

    async def aclose(self) -> None:
        await asyncio.gather(*(s.aclose() for s in list(self._sessions)), return_exceptions=True)
        if self._registry is not None:
            await self._registry.aclose()

    # ---- connections (used by RealtimeSession) ----------------------------------------------------

    async def connect(
        self, conversation_id: str, *, exclude: Iterable[str] = ()
    ) -> tuple[ClientConnection, str]:
        """A connection for the conversation, and the worker it reached (registry id or URL)."""
        if self._registry is None:
            assert self.url is not None
            last: EngineError | None = None
            for delay in (0.0, *_RETRY_DELAYS_S):
                await asyncio.sleep(delay)
                try:
                    return await self._dial(self.url, conversation_id, None), self.url
                except EngineError as exc:
                    last = exc
            raise NoWorkerError(f"no worker could take the call: {last}")
        tried = set(exclude)
        while True:
            placement = await self._registry.place(exclude=sorted(tried))
            try:
                ws = await self._dial(placement.url, conversation_id, placement.token)
            except EngineError as exc:
                logger.warning("worker %s refused the call: %s", placement.worker_id, exc)
                with contextlib.suppress(NoWorkerError):
                    await self._registry.release(placement)
                tried.add(placement.worker_id)
                continue
            return ws, placement.worker_id

    async def _dial(self, url: str, conversation_id: str, placement: str | None) -> ClientConnection:
        parts = urlsplit(url)
        query = {"model": self.model, "conversation_id": conversation_id}
        if placement is not None:
            query["placement"] = placement
        full = urlunsplit(parts._replace(query="&".join(filter(None, [parts.query, urlencode(query)]))))
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            return await connect(
                full,
                additional_headers=headers,
                open_timeout=self.timeout_s,
                compression=None,
                max_size=_MAX_MESSAGE_BYTES,
                ping_interval=20,
                ping_timeout=20,
            )
        except InvalidStatus as exc:
            if exc.response.status_code in (401, 403):
                # Retrying elsewhere cannot help: the token is wrong for the whole pool.
                raise ConfigError(
                    f"{url} rejected the token (realtime_token): HTTP {exc.response.status_code}"
                ) from exc
            raise EngineError(f"cannot open a session at {url}: {exc}") from exc
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise EngineError(f"cannot open a session at {url}: {exc}") from exc
