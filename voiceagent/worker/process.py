"""``voiceagent worker``: one model worker process, from start to a drained exit.

SIGTERM (and the first SIGINT) drains: the worker leaves placement at once (``draining`` in the
registry, ``/readyz`` 503), lets open calls finish, then exits. A second signal stops it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys

from voiceagent.config import Settings
from voiceagent.errors import ConfigError
from voiceagent.worker.engines import load_worker_engine
from voiceagent.worker.registry import WorkerRegistry
from voiceagent.worker.server import WorkerServer, advertised_host

__all__ = ["run_worker"]

logger = logging.getLogger(__name__)


def _check(settings: Settings) -> None:
    if settings.worker_token is None and settings.environment == "production":
        raise ConfigError("worker_token (VOICEAGENT_WORKER_TOKEN) is required when environment is production")


async def run_worker(
    settings: Settings,
    engine_name: str,
    *,
    reply_ms: int = 1500,
    e2e_preset: str = "tiny",
    device: str | None = None,
) -> None:
    """Load the engine, serve until a signal, drain, exit. Prints one JSON line once listening."""
    _check(settings)
    if settings.worker_token is None:
        logger.warning("worker_token is not set: any client may open sessions (development only)")
    engine = await load_worker_engine(
        engine_name, settings, reply_ms=reply_ms, e2e_preset=e2e_preset, device=device
    )
    registry = None
    if settings.redis_url is not None:
        registry = WorkerRegistry(
            settings.redis_url, prefix=settings.pool_prefix, ttl_s=settings.worker_ttl_s
        )
    server = WorkerServer(
        engine,
        capacity=settings.worker_capacity,
        token=settings.worker_token,
        worker_id=settings.worker_id or "pending",
        registry=registry,
        heartbeat_s=settings.worker_heartbeat_s,
        url=settings.worker_url,
    )
    stop = asyncio.Event()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            logger.warning("second signal: stopping without waiting for calls")
            raise SystemExit(1)
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        port = await _start(server, settings)
        line = {"event": "listening", "worker_id": server.worker_id, "url": server.url, "port": port}
        print(json.dumps(line), flush=True)
        await stop.wait()
        drained = await server.drain(settings.worker_drain_timeout_s)
        print(
            json.dumps({"event": "drained" if drained else "drain_timeout", "active": server.active}),
            flush=True,
        )
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):
                loop.remove_signal_handler(sig)
        await server.aclose()
    sys.stdout.flush()


async def _start(server: WorkerServer, settings: Settings) -> int:
    port = await server.start(settings.worker_host, settings.worker_port)
    if settings.worker_id is None:
        # Known only now when the port was 0 (picked by the OS), and needed before the first heartbeat.
        server.worker_id = f"{advertised_host(settings.worker_host)}:{port}"
    await server.join_pool()
    return port
