"""The realtime engine on a pool of two in-process workers (real Redis): placement, failover, failure.

A worker's connections are cut mid-reply, as when its process dies: the call is placed on the other
worker, the reply goes on where it stopped (no byte played twice, none missing), and the
conversation continues from session memory (the scripted engine numbers its replies from memory).
"""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import ServerConnection, serve

from voiceagent.engines.events import (
    EngineErrorEvent,
    InputAudioBufferAppend,
    InputAudioBufferCommit,
    ResponseCreate,
    ResponseCreated,
    ResponseDone,
    ResponseOutputAudioDelta,
    ResponseOutputAudioTranscriptDelta,
    ServerEvent,
    SessionConfig,
    SessionCreated,
)
from voiceagent.engines.realtime import RealtimeEngine, RealtimeSession
from voiceagent.errors import EngineError, NoWorkerError
from voiceagent.memory import RedisMemory
from voiceagent.worker.registry import WorkerInfo, WorkerRegistry
from voiceagent.worker.scripted import ScriptedWorkerConfig, ScriptedWorkerEngine
from voiceagent.worker.server import WorkerServer

from .test_memory_contract import REDIS_URL, delete_prefix

TOKEN = "pool-token"
REPLY_MS = 600


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"voiceagent-test:{uuid.uuid4().hex}:"
    yield name
    await delete_prefix(name)


async def _worker(prefix: str, name: str) -> WorkerServer:
    memory = RedisMemory(REDIS_URL, prefix=f"{prefix}mem:")
    engine = ScriptedWorkerEngine(ScriptedWorkerConfig(reply_ms=REPLY_MS, chunk_ms=100), memory)
    registry = WorkerRegistry(REDIS_URL, prefix=prefix, ttl_s=1.0)
    server = WorkerServer(engine, capacity=4, token=TOKEN, worker_id=name, registry=registry, heartbeat_s=0.2)
    await server.start("127.0.0.1", 0)
    await server.join_pool()
    return server


def _kill(server: WorkerServer) -> None:
    """Cut every connection without a close frame, as a dead process would."""
    assert server._server is not None
    server._server.close(close_connections=False)
    for conn in list(server._server.connections):
        conn.transport.abort()


async def _turn(session: RealtimeSession, *, kill: WorkerServer | None = None) -> list[ServerEvent]:
    await session.send(InputAudioBufferAppend(b"\0\0" * 16000))
    await session.send(InputAudioBufferCommit())
    await session.send(ResponseCreate())
    events: list[ServerEvent] = []
    while not events or not isinstance(events[-1], ResponseDone):
        events.append(await asyncio.wait_for(session.recv(), 10))
        deltas = [e for e in events if isinstance(e, ResponseOutputAudioDelta)]
        if kill is not None and len(deltas) == 2:
            _kill(kill)
            kill = None
    return events


def _audio(events: list[ServerEvent]) -> bytes:
    return b"".join(e.delta for e in events if isinstance(e, ResponseOutputAudioDelta))


def _text(events: list[ServerEvent]) -> str:
    return "".join(e.delta for e in events if isinstance(e, ResponseOutputAudioTranscriptDelta))


async def test_a_call_survives_its_worker_dying_mid_reply(prefix: str) -> None:
    workers = {name: await _worker(prefix, name) for name in ("a", "b")}
    engine = RealtimeEngine(registry=WorkerRegistry(REDIS_URL, prefix=prefix), token=TOKEN, reconnects=2)
    try:
        session = await engine.open_session(SessionConfig(16000, 16000))
        assert isinstance(await session.recv(), SessionCreated)
        first = await _turn(session)
        assert _text(first) == "Reply number 1."
        host = workers[session.workers[0]]

        second = await _turn(session, kill=host)
        created = [e for e in second if isinstance(e, ResponseCreated)]
        done = second[-1]
        assert isinstance(done, ResponseDone)
        assert done.status == "completed"
        assert len(created) == 1
        assert done.response_id == created[0].response_id
        assert len(_audio(second)) == 2 * 16000 * REPLY_MS // 1000  # nothing lost, nothing twice
        assert _text(second) == "Reply number 2."  # the other worker knew reply 1: memory restored
        assert session.failovers == 1
        assert len(set(session.workers)) == 2
        assert {e.item_id for e in second if isinstance(e, ResponseOutputAudioDelta)} == {done.output[0].id}

        third = await _turn(session)
        assert _text(third) == "Reply number 3."

        other = workers[session.workers[-1]]
        failed = await _turn(session, kill=other)
        assert any(isinstance(e, EngineErrorEvent) and e.code == "worker_unavailable" for e in failed)
        assert isinstance(failed[-1], ResponseDone)
        assert failed[-1].status == "failed"
        with pytest.raises(EngineError):
            await session.send(ResponseCreate())
        await session.aclose()
        with pytest.raises(NoWorkerError):
            await engine.open_session(SessionConfig())
    finally:
        await engine.aclose()
        for server in workers.values():
            await server.aclose()


async def test_a_worker_that_fails_the_handshake_is_passed_over(prefix: str) -> None:
    """A worker that accepts the connection and then closes it (as one that lost a race for its
    last slot does) costs the call a retry on another worker, not the call."""

    async def close_at_once(conn: ServerConnection) -> None:
        await conn.close(1013, "worker at capacity")

    broken = await serve(close_at_once, "127.0.0.1", 0)
    port = broken.sockets[0].getsockname()[1]
    registry = WorkerRegistry(REDIS_URL, prefix=prefix, ttl_s=10.0)
    # More free slots than the real worker, so placement tries it first.
    await registry.announce(
        WorkerInfo("broken", f"ws://127.0.0.1:{port}/v1/realtime", 100, "x"), active=0, draining=False
    )
    good = await _worker(prefix, "good")
    engine = RealtimeEngine(registry=WorkerRegistry(REDIS_URL, prefix=prefix), token=TOKEN)
    try:
        session = await engine.open_session(SessionConfig(16000, 16000))
        assert session.workers == ["good"]
        assert _text(await _turn_after_created(session)) == "Reply number 1."
        await session.aclose()
    finally:
        await engine.aclose()
        await good.aclose()
        await registry.aclose()
        broken.close()
        await broken.wait_closed()


async def _turn_after_created(session: RealtimeSession) -> list[ServerEvent]:
    assert isinstance(await session.recv(), SessionCreated)
    return await _turn(session)
