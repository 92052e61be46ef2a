"""The worker registry on the real Redis: placement is atomic, skips dead/draining/full workers."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

from voiceagent.errors import NoWorkerError
from voiceagent.worker.registry import WorkerInfo, WorkerRegistry

from .test_memory_contract import REDIS_URL, delete_prefix


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"voiceagent-test:{uuid.uuid4().hex}:"
    yield name
    await delete_prefix(name)


def _registry(prefix: str, ttl_s: float = 5.0, reservation_s: float = 10.0) -> WorkerRegistry:
    return WorkerRegistry(REDIS_URL, prefix=prefix, ttl_s=ttl_s, reservation_s=reservation_s)


async def test_concurrent_placements_never_oversubscribe(prefix: str) -> None:
    """Ten media nodes race for 7 slots over two workers: exactly 7 win, each worker within capacity."""
    worker = _registry(prefix)
    await worker.announce(WorkerInfo("a", "ws://a", 3, "scripted"), active=0, draining=False)
    await worker.announce(WorkerInfo("b", "ws://b", 4, "scripted"), active=0, draining=False)
    media = [_registry(prefix) for _ in range(10)]

    async def place_many(registry: WorkerRegistry) -> list[str]:
        won: list[str] = []
        for _ in range(3):
            with contextlib.suppress(NoWorkerError):
                won.append((await registry.place()).worker_id)
        return won

    results = await asyncio.gather(*(place_many(r) for r in media))
    placed = [w for won in results for w in won]
    assert sorted(placed) == ["a"] * 3 + ["b"] * 4
    status = {s.id: s for s in await worker.workers()}
    assert (status["a"].reserved, status["b"].reserved) == (3, 4)
    for registry in [worker, *media]:
        await registry.aclose()


async def test_least_loaded_worker_is_chosen_and_claims_count(prefix: str) -> None:
    registry = _registry(prefix)
    await registry.announce(WorkerInfo("a", "ws://a", 10, "scripted"), active=6, draining=False)
    await registry.announce(WorkerInfo("b", "ws://b", 10, "scripted"), active=2, draining=False)
    first = await registry.place()
    assert (first.worker_id, first.url) == ("b", "ws://b")
    await registry.claim("b", first.token, active=3)
    status = {s.id: s for s in await registry.workers()}
    assert (status["b"].active, status["b"].reserved) == (3, 0)
    await registry.aclose()


async def test_draining_excluded_and_dead_workers_get_nothing(prefix: str) -> None:
    registry = _registry(prefix, ttl_s=0.3)
    await registry.announce(WorkerInfo("draining", "ws://d", 10, "scripted"), active=0, draining=True)
    await registry.announce(WorkerInfo("excluded", "ws://e", 10, "scripted"), active=0, draining=False)
    await registry.announce(WorkerInfo("dying", "ws://x", 10, "scripted"), active=9, draining=False)
    assert (await registry.place(exclude=["excluded"])).worker_id == "dying"
    await asyncio.sleep(0.5)  # no heartbeat: every entry expires
    with pytest.raises(NoWorkerError):
        await registry.place()
    assert await registry.workers() == []
    await registry.aclose()


async def test_unclaimed_reservations_expire_and_release_frees_at_once(prefix: str) -> None:
    registry = _registry(prefix, reservation_s=0.3)
    await registry.announce(WorkerInfo("a", "ws://a", 1, "scripted"), active=0, draining=False)
    placement = await registry.place()
    with pytest.raises(NoWorkerError):
        await registry.place()
    await registry.release(placement)
    lost = await registry.place()  # a media node that died holding it...
    assert lost.worker_id == "a"
    await asyncio.sleep(0.4)  # ...only blocks the slot until its reservation expires
    assert (await registry.place()).worker_id == "a"
    await registry.aclose()


async def test_unreachable_redis_is_no_worker_error() -> None:
    registry = WorkerRegistry("redis://127.0.0.1:1/0")
    with pytest.raises(NoWorkerError, match="registry"):
        await registry.place()
    await registry.aclose()
