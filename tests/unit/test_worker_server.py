"""The worker server in-process: auth, health/load/metrics, capacity, drain, protocol errors, G.711."""

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from voiceagent.audio import ulaw_encode
from voiceagent.worker.scripted import ScriptedWorkerConfig, ScriptedWorkerEngine
from voiceagent.worker.server import WorkerServer

TOKEN = "test-token"


@pytest.fixture
async def server() -> AsyncIterator[WorkerServer]:
    engine = ScriptedWorkerEngine(ScriptedWorkerConfig(reply_ms=400, chunk_ms=100, realtime=False))
    worker = WorkerServer(engine, capacity=2, token=TOKEN, worker_id="w1")
    await worker.start("127.0.0.1", 0)
    yield worker
    await worker.aclose()


def _ws_url(server: WorkerServer, query: str = "") -> str:
    assert server.url is not None
    return server.url + query


def _http(server: WorkerServer) -> str:
    assert server.url is not None
    return server.url.replace("ws://", "http://").removesuffix("/v1/realtime")


async def _open(server: WorkerServer, **kwargs: Any) -> ClientConnection:
    kwargs.setdefault("additional_headers", {"Authorization": f"Bearer {TOKEN}"})
    return await connect(_ws_url(server, kwargs.pop("query", "")), **kwargs)


async def _until(ws: ClientConnection, kind: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    while not seen or seen[-1]["type"] != kind:
        seen.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
    return seen


async def _get(server: WorkerServer, path: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(_http(server) + path)


async def test_health_ready_load_and_metrics(server: WorkerServer) -> None:
    assert (await _get(server, "/healthz")).status_code == 200
    assert (await _get(server, "/readyz")).status_code == 200
    load = (await _get(server, "/load")).json()
    assert load == {
        "worker_id": "w1",
        "engine": "scripted",
        "capacity": 2,
        "active": 0,
        "peak": 0,
        "free": 2,
        "draining": False,
    }
    metrics = await _get(server, "/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    for name in ("active_sessions", "step_seconds", "first_audio_seconds", "queue_depth"):
        assert f"voiceagent_worker_{name}" in metrics.text
    assert (await _get(server, "/nope")).status_code == 404


async def test_a_session_answers_and_is_counted(server: WorkerServer) -> None:
    async with await _open(server) as ws:
        assert (await _until(ws, "session.created"))[-1]["session"]["audio"]["output"]["format"][
            "rate"
        ] == 24000
        await ws.send(
            json.dumps(
                {"type": "input_audio_buffer.append", "audio": base64.b64encode(b"\0" * 4800).decode()}
            )
        )
        await ws.send('{"type": "input_audio_buffer.commit"}')
        await ws.send('{"type": "response.create"}')
        events = await _until(ws, "response.done")
        assert (await _get(server, "/load")).json()["active"] == 1
    kinds = [e["type"] for e in events]
    assert "conversation.item.input_audio_transcription.completed" in kinds
    audio = b"".join(
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
    )
    assert len(audio) == 2 * 24000 * 400 // 1000
    assert events[-1]["response"]["status"] == "completed"
    metrics = (await _get(server, "/metrics")).text
    assert "voiceagent_worker_first_audio_seconds_count 1.0" in metrics
    for _ in range(100):
        if server.active == 0:
            break
        await asyncio.sleep(0.01)
    assert server.active == 0


@pytest.mark.parametrize("where", ["header", "subprotocol", "query"])
async def test_each_way_of_presenting_the_token_is_accepted(server: WorkerServer, where: str) -> None:
    kwargs: dict[str, Any] = {"additional_headers": {}}
    if where == "header":
        kwargs["additional_headers"] = {"Authorization": f"Bearer {TOKEN}"}
    elif where == "subprotocol":
        kwargs["subprotocols"] = ["realtime", f"openai-insecure-api-key.{TOKEN}"]
    else:
        kwargs["query"] = f"?api_key={TOKEN}"
    async with await _open(server, **kwargs) as ws:
        assert (await _until(ws, "session.created"))[-1]["type"] == "session.created"
        if where == "subprotocol":
            assert ws.subprotocol == "realtime"


async def test_a_wrong_token_gets_401(server: WorkerServer) -> None:
    with pytest.raises(InvalidStatus) as caught:
        await _open(server, additional_headers={"Authorization": "Bearer wrong"})
    assert caught.value.response.status_code == 401


async def test_a_full_worker_refuses_with_503(server: WorkerServer) -> None:
    first, second = await _open(server), await _open(server)
    try:
        await _until(first, "session.created")
        await _until(second, "session.created")
        with pytest.raises(InvalidStatus) as caught:
            await _open(server)
        assert caught.value.response.status_code == 503
    finally:
        await first.close()
        await second.close()


async def test_a_bad_message_gets_an_error_and_the_session_goes_on(server: WorkerServer) -> None:
    async with await _open(server) as ws:
        await _until(ws, "session.created")
        await ws.send("{not json")
        error = (await _until(ws, "error"))[-1]
        assert error["error"]["code"] == "invalid_request_error"
        await ws.send('{"type": "conversation.item.create", "item": {}}')
        assert "only a user message" in (await _until(ws, "error"))[-1]["error"]["message"]
        await ws.send('{"type": "session.update", "session": {"instructions": "x"}}')
        assert (await _until(ws, "session.updated"))[-1]["session"]["instructions"] == "x"


async def test_drain_refuses_new_sessions_and_lets_open_ones_finish(server: WorkerServer) -> None:
    ws = await _open(server)
    await _until(ws, "session.created")
    drain = asyncio.create_task(server.drain(timeout_s=5))
    await asyncio.sleep(0.05)
    assert (await _get(server, "/readyz")).status_code == 503
    with pytest.raises(InvalidStatus):
        await _open(server)
    await ws.send('{"type": "input_audio_buffer.commit"}')
    await ws.send('{"type": "response.create"}')
    assert (await _until(ws, "response.done"))[-1]["response"]["status"] == "completed"
    assert not drain.done()
    await ws.close()
    assert await asyncio.wait_for(drain, 5) is True


async def test_g711_sessions_are_converted_at_the_edge(server: WorkerServer) -> None:
    async with await _open(server) as ws:
        await _until(ws, "session.created")
        update = {
            "type": "session.update",
            "session": {"input_audio_format": "g711_ulaw", "output_audio_format": "g711_ulaw"},
        }
        await ws.send(json.dumps(update))
        await _until(ws, "session.updated")
        tone = (np.sin(np.arange(8000) / 8) * 8000).astype(np.int16)
        await ws.send(
            json.dumps(
                {
                    "type": "input_audio_buffer.append",
                    "audio": base64.b64encode(ulaw_encode(tone).tobytes()).decode(),
                }
            )
        )
        await ws.send('{"type": "input_audio_buffer.commit"}')
        transcript = (await _until(ws, "conversation.item.input_audio_transcription.completed"))[-1]
        assert transcript["transcript"] == "(caller audio 1000 ms)"  # 8000 µ-law bytes = 1 s at 8 kHz
        await ws.send('{"type": "response.create"}')
        events = await _until(ws, "response.done")
    audio = b"".join(
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
    )
    assert len(audio) == 8000 * 400 // 1000  # one byte per sample


async def test_server_vad_is_refused_clearly(server: WorkerServer) -> None:
    async with await _open(server) as ws:
        await _until(ws, "session.created")
        await ws.send('{"type": "session.update", "session": {"turn_detection": {"type": "server_vad"}}}')
        assert (await _until(ws, "error"))[-1]["error"]["code"] == "unsupported_turn_detection"
        assert (await _until(ws, "session.updated"))[-1]["session"]["audio"]["input"][
            "turn_detection"
        ] is None
