"""RedisMemory beyond the contract: separate connections and processes, key layout, failures.

Runs against the Redis on 127.0.0.1:6379 (scripts/services.sh), under a prefix unique to each test.
"""

import asyncio
import json
import multiprocessing
import time
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
import redis.asyncio as aioredis

from voiceagent.agents import Message
from voiceagent.config import load_settings
from voiceagent.errors import ConfigError, MemoryStoreError
from voiceagent.memory import CallSummary, ExtractiveSummarizer, InProcessMemory, RedisMemory, build_memory

from .test_memory_contract import REDIS_URL, delete_prefix


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"voiceagent-test:{uuid.uuid4().hex}:"
    yield name
    await delete_prefix(name)


@pytest.fixture
async def raw() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


class SlowSummarizer(ExtractiveSummarizer):
    """Takes a moment per fold, as an LLM would, so the two writers really do race."""

    async def fold(self, summary: CallSummary, messages: Sequence[Message]) -> CallSummary:
        await asyncio.sleep(0.002)
        return await super().fold(summary, messages)


async def test_two_connections_folding_one_call_lose_no_turn(prefix: str) -> None:
    first = RedisMemory(REDIS_URL, prefix=prefix, budget_chars=500, summarizer=SlowSummarizer())
    second = RedisMemory(REDIS_URL, prefix=prefix, budget_chars=500, summarizer=SlowSummarizer())

    async def talk(memory: RedisMemory, speaker: str) -> None:
        for i in range(60):
            line = f"{speaker} line {i}, order {1000 + i} " + "z" * 20
            await memory.append("shared", Message("user", line))
            context = await memory.context("shared")
            assert context.size_chars <= 500

    try:
        await asyncio.gather(talk(first, "a"), talk(second, "b"))
        sent = await first.messages("shared")
        context = await second.context("shared")
    finally:
        await first.aclose()
        await second.aclose()
    assert len(sent) == 120
    assert [m.content for m in sent if m.content.startswith("a ")] == [
        f"a line {i}, order {1000 + i} " + "z" * 20 for i in range(60)
    ]
    # Every turn is either folded exactly once or still verbatim: none lost, none twice.
    assert context.summary.turns_folded + len(context.recent) == 120
    assert context.recent == sent[-len(context.recent) :]


class GatedSummarizer(ExtractiveSummarizer):
    """Holds its first fold until released, to line up a race exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def fold(self, summary: CallSummary, messages: Sequence[Message]) -> CallSummary:
        if not self.entered.is_set():
            self.entered.set()
            await self.release.wait()
        return await super().fold(summary, messages)


async def test_a_slow_fold_does_not_roll_back_a_newer_one(prefix: str, raw: aioredis.Redis) -> None:
    gated = GatedSummarizer()
    slow = RedisMemory(REDIS_URL, prefix=prefix, budget_chars=500, summarizer=gated)
    fast = RedisMemory(REDIS_URL, prefix=prefix, budget_chars=500)
    try:
        for i in range(20):
            await fast.append("race", Message("user", f"early line {i} " + "e" * 30))
        slow_context = asyncio.create_task(slow.context("race"))
        await gated.entered.wait()  # slow has read the call and is folding the first 20 turns
        for i in range(40):
            await fast.append("race", Message("user", f"later line {i} " + "l" * 30))
        newer = await fast.context("race")
        gated.release.set()
        older_start = await slow_context
    finally:
        await slow.aclose()
        await fast.aclose()
    stored = int(await raw.hget(f"{prefix}call:race:summary", "folded") or 0)
    # The slow writer must notice it lost the race and fold from the newer state, not overwrite it.
    assert stored >= newer.summary.turns_folded > 20
    assert older_start.summary.turns_folded >= newer.summary.turns_folded
    assert older_start.summary.turns_folded + len(older_start.recent) == 60


async def test_two_connections_remembering_one_caller_lose_no_call(prefix: str) -> None:
    first = RedisMemory(REDIS_URL, prefix=prefix)
    second = RedisMemory(REDIS_URL, prefix=prefix)

    async def remember(memory: RedisMemory, name: str) -> None:
        for i in range(25):
            await memory.remember_caller("+15550100", CallSummary(intents=(name,)), call_id=f"{name}-{i}")

    try:
        await asyncio.gather(remember(first, "a"), remember(second, "b"))
        recalled = await first.recall_caller("+15550100")
    finally:
        await first.aclose()
        await second.aclose()
    assert recalled is not None
    assert recalled.calls == 50


def _append_from_another_process(prefix: str, speaker: str, count: int) -> None:
    async def run() -> None:
        memory = RedisMemory(REDIS_URL, prefix=prefix)
        try:
            for i in range(count):
                await memory.append("mp-call", Message("user", f"{speaker}:{i}"))
        finally:
            await memory.aclose()

    asyncio.run(run())


async def test_two_processes_appending_to_one_call_keep_all_400(prefix: str) -> None:
    spawn = multiprocessing.get_context("spawn")  # fresh interpreters: no event loop inherited
    workers = [spawn.Process(target=_append_from_another_process, args=(prefix, s, 200)) for s in "ab"]
    for worker in workers:
        worker.start()
    for worker in workers:
        await asyncio.to_thread(worker.join, 60)
        assert worker.exitcode == 0
    memory = RedisMemory(REDIS_URL, prefix=prefix)
    try:
        contents = [m.content for m in await memory.messages("mp-call")]
    finally:
        await memory.aclose()
    assert len(contents) == 400
    for speaker in "ab":
        assert [c for c in contents if c.startswith(speaker)] == [f"{speaker}:{i}" for i in range(200)]


async def test_key_layout_and_ttls_are_as_documented(prefix: str, raw: aioredis.Redis) -> None:
    memory = RedisMemory(REDIS_URL, prefix=prefix, budget_chars=400, caller_ttl_s=3600, call_ttl_s=600)
    try:
        await memory.bind_caller("c1", "+15550200")
        for i in range(20):
            await memory.append("c1", Message("user", f"My order number is 4417. Line {i} " + "w" * 30))
        await memory.context("c1")
        await memory.remember_caller("+15550200", await memory.summary("c1"), call_id="c1")
    finally:
        await memory.aclose()
    keys = sorted([k.removeprefix(prefix) async for k in raw.scan_iter(match=f"{prefix}*")])
    assert keys == ["call:c1:messages", "call:c1:summary", "caller:+15550200", "caller:+15550200:calls"]
    assert json.loads(await raw.lindex(f"{prefix}call:c1:messages", 0)) == {
        "role": "user",
        "content": "My order number is 4417. Line 0 " + "w" * 30,
    }
    state = await raw.hgetall(f"{prefix}call:c1:summary")
    assert int(state["folded"]) > 0
    assert CallSummary.model_validate_json(state["summary"]).order_numbers == ["4417"]
    assert await raw.smembers(f"{prefix}caller:+15550200:calls") == {"c1"}
    assert 590 <= await raw.ttl(f"{prefix}call:c1:messages") <= 600
    assert 3590 <= await raw.ttl(f"{prefix}caller:+15550200") <= 3600


async def test_unreadable_data_is_a_memory_store_error(prefix: str, raw: aioredis.Redis) -> None:
    await raw.set(f"{prefix}caller:+15550300", "not json")
    await raw.rpush(f"{prefix}call:bad:messages", "{oops")
    memory = RedisMemory(REDIS_URL, prefix=prefix)
    try:
        with pytest.raises(MemoryStoreError, match="CallerMemory"):
            await memory.recall_caller("+15550300")
        with pytest.raises(MemoryStoreError, match="unreadable message"):
            await memory.messages("bad")
    finally:
        await memory.aclose()


async def test_dead_redis_fails_fast_with_a_clear_error() -> None:
    memory = RedisMemory("redis://:secret@127.0.0.1:1/0", timeout_s=1.0)
    try:
        for operation in (
            memory.append("c1", Message("user", "hello")),
            memory.messages("c1"),
            memory.context("c1"),
            memory.remember_caller("+1555", CallSummary()),
            memory.recall_caller("+1555"),
            memory.forget_caller("+1555"),
        ):
            started = time.monotonic()
            with pytest.raises(MemoryStoreError, match=r"127\.0\.0\.1:1\b") as caught:
                await operation
            assert time.monotonic() - started < 5.0
            assert "secret" not in str(caught.value)
    finally:
        await memory.aclose()


async def test_build_memory_follows_settings() -> None:
    in_process = build_memory(load_settings(memory_budget_chars=2000))
    assert isinstance(in_process, InProcessMemory)
    assert in_process.budget_chars == 2000
    on_redis = build_memory(load_settings(redis_url=REDIS_URL))
    try:
        assert isinstance(on_redis, RedisMemory)
    finally:
        await on_redis.aclose()


def test_a_url_that_is_not_redis_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="redis_url"):
        RedisMemory("http://127.0.0.1:6379")
