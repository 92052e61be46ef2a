"""What the deploy tests (Docker images, Helm chart) ask of the real servers: which health and metrics
paths the media app and the model worker answer, the worker's metric names, and whether a draining
worker stops being ready. Both test modules check their probes against these same answers."""

from __future__ import annotations

from pathlib import Path

import httpx

from voiceagent.api.app import create_app
from voiceagent.config import Settings
from voiceagent.worker.scripted import ScriptedWorkerEngine
from voiceagent.worker.server import WorkerServer

# (paths served with 200 per process, the worker's /metrics text, whether /readyz said 503 when draining)
Served = tuple[dict[str, set[str]], str, bool]

# Paths each process answers, found by asking the real servers (the worker's routes live in a
# websockets process_request hook, so there is no route table to read).
_CANDIDATE_PATHS = ("/healthz", "/readyz", "/load", "/metrics", "/no-such-path")


async def _status_codes(client: httpx.AsyncClient) -> dict[str, int]:
    codes = {path: (await client.get(path)).status_code for path in _CANDIDATE_PATHS}
    assert codes.pop("/no-such-path") == 404, "an unknown path must not look served"
    return codes


async def served_paths(data_dir: Path) -> Served:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{data_dir / 'calls.db'}", webhooks_enabled=False)
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://media") as client,
    ):
        media = await _status_codes(client)
    engine = ScriptedWorkerEngine()
    server = WorkerServer(engine, capacity=1)
    port = await server.start("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:
            worker = await _status_codes(client)
            metrics = (await client.get("/metrics")).text
            await server.drain(timeout_s=0.1)
            drained_ready = (await client.get("/readyz")).status_code
    finally:
        await server.aclose()
    served = {
        name: {path for path, code in codes.items() if code == 200}
        for name, codes in (("media", media), ("worker", worker))
    }
    return served, metrics, drained_ready == 503
