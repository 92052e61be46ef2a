"""Session memory in Redis, shared by every media process of a deployment.

Key layout (``prefix`` defaults to ``voiceagent:``; see docs/memory.md)::

    {prefix}call:{call_id}:messages     list    every turn, JSON {"role", "content"}, oldest first
    {prefix}call:{call_id}:summary      hash    folded = turns folded so far, summary = CallSummary JSON
    {prefix}caller:{caller_id}          string  CallerMemory JSON, expires after caller_ttl_s
    {prefix}caller:{caller_id}:calls    set     ids of the calls bound to the caller (for forget)

Appends are one RPUSH, atomic by themselves. Folding is a compare-and-set in Lua: it writes the new
summary only if no one else folded meanwhile, so two processes never fold a turn twice or lose
one, and appends never make a fold retry. Caller merges and forgets read several keys before they
write, so they use WATCH/MULTI and retry when another client got there first.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError, WatchError

from voiceagent.agents import Message
from voiceagent.errors import ConfigError, MemoryStoreError
from voiceagent.memory.budget import MIN_BUDGET_CHARS, fold_to_budget
from voiceagent.memory.extract import ExtractiveSummarizer, Summarizer
from voiceagent.memory.store import DEFAULT_CALL_TTL_S, merge_caller
from voiceagent.memory.summary import CallerMemory, CallSummary, Context

__all__ = ["RedisMemory"]

_M = TypeVar("_M", CallSummary, CallerMemory)

# Writers racing on one key retry this often before giving up with an error instead of spinning.
_MAX_ATTEMPTS = 50

# KEYS: summary hash, messages list. ARGV: folded count read, new folded count, summary JSON, TTL ms.
# 0: someone folded meanwhile (read again); -1: the call was deleted meanwhile; 1: written.
_FOLD_CAS = """
local current = tonumber(redis.call('HGET', KEYS[1], 'folded') or '0')
if current ~= tonumber(ARGV[1]) then return 0 end
if redis.call('LLEN', KEYS[2]) < tonumber(ARGV[2]) then return -1 end
redis.call('HSET', KEYS[1], 'folded', ARGV[2], 'summary', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""


class RedisMemory:
    """:class:`~voiceagent.memory.SessionMemory` on Redis; safe across processes and connections."""

    def __init__(
        self,
        url: str,
        *,
        budget_chars: int = 6000,
        caller_ttl_s: float = 30 * 86400.0,
        call_ttl_s: float = DEFAULT_CALL_TTL_S,
        summarizer: Summarizer | None = None,
        prefix: str = "voiceagent:",
        timeout_s: float = 2.0,
    ) -> None:
        if budget_chars < MIN_BUDGET_CHARS:
            raise ValueError(f"budget_chars must be at least {MIN_BUDGET_CHARS}")
        self._budget_chars = budget_chars
        self._caller_ttl_ms = _ms(caller_ttl_s)
        self._call_ttl_ms = _ms(call_ttl_s)
        self._summarizer = summarizer if summarizer is not None else ExtractiveSummarizer()
        self._prefix = prefix
        # Socket timeouts and few retries: a dead or unreachable Redis must fail a call's memory
        # within seconds, not hang the turn. redis-py's default retries would multiply the wait.
        try:
            self._redis: aioredis.Redis = aioredis.Redis.from_url(
                url,
                decode_responses=True,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=1),
                health_check_interval=30,
            )
        except ValueError as exc:
            raise ConfigError(f"redis_url is not a Redis URL: {exc}") from exc
        self._fold_cas = self._redis.register_script(_FOLD_CAS)
        self._url_for_errors = url.split("@")[-1]  # never put a password into a message

    @property
    def budget_chars(self) -> int:
        """The most characters :meth:`context` returns."""
        return self._budget_chars

    # ---- per call -----------------------------------------------------------------------------

    async def append(self, call_id: str, message: Message) -> None:
        """Add one turn to the end of a call's conversation (one atomic RPUSH)."""
        payload = json.dumps({"role": message.role, "content": message.content})
        async with self._translate("append"), self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(self._messages_key(call_id), payload)
            pipe.pexpire(self._messages_key(call_id), self._call_ttl_ms)
            pipe.pexpire(self._summary_key(call_id), self._call_ttl_ms)
            await pipe.execute()

    async def messages(self, call_id: str) -> list[Message]:
        """Every turn of the call, oldest first."""
        async with self._translate("messages"):
            raw = await self._redis.lrange(self._messages_key(call_id), 0, -1)
        return [_message(_text(item)) for item in raw]

    async def context(self, call_id: str) -> Context:
        """Summary plus recent turns within the budget; folds and stores the summary when over it."""
        for _ in range(_MAX_ATTEMPTS):
            folded, summary, pending = await self._read_call(call_id)
            result = await fold_to_budget(summary, pending, self._budget_chars, self._summarizer)
            if not result.newly_folded:
                return Context(result.summary, result.recent)
            async with self._translate("context"):
                written = await self._fold_cas(
                    keys=[self._summary_key(call_id), self._messages_key(call_id)],
                    args=[
                        folded,
                        folded + result.newly_folded,
                        result.summary.model_dump_json(),
                        self._call_ttl_ms,
                    ],
                )
            if written == 1:
                return Context(result.summary, result.recent)
            if written == -1:
                return Context(CallSummary(), [])
        raise MemoryStoreError(f"call {call_id}: summary kept changing under {_MAX_ATTEMPTS} attempts")

    async def summary(self, call_id: str) -> CallSummary:
        """A summary of the whole call; stores nothing."""
        _, summary, pending = await self._read_call(call_id)
        return await self._summarizer.fold(summary, pending)

    async def forget_call(self, call_id: str) -> None:
        """Delete one call's turns and summary."""
        async with self._translate("forget_call"):
            await self._redis.delete(self._messages_key(call_id), self._summary_key(call_id))

    async def _read_call(self, call_id: str) -> tuple[int, CallSummary, list[Message]]:
        async with self._translate("read call"):
            state = await self._redis.hgetall(self._summary_key(call_id))
            folded = int(state.get("folded", 0))
            raw = await self._redis.lrange(self._messages_key(call_id), folded, -1)
        summary = _parse(CallSummary, state["summary"]) if "summary" in state else CallSummary()
        return folded, summary, [_message(_text(item)) for item in raw]

    # ---- per caller ---------------------------------------------------------------------------

    async def bind_caller(self, call_id: str, caller_id: str) -> None:
        """Record the call as the caller's, for :meth:`forget_caller`."""
        async with self._translate("bind_caller"), self._redis.pipeline(transaction=True) as pipe:
            pipe.sadd(self._calls_key(caller_id), call_id)
            pipe.pexpire(self._calls_key(caller_id), self._caller_ttl_ms)
            await pipe.execute()

    async def remember_caller(
        self, caller_id: str, summary: CallSummary, *, call_id: str | None = None
    ) -> CallerMemory:
        """Merge a call's summary into the caller's memory (WATCH/MULTI) and restart its TTL."""
        key = self._caller_key(caller_id)
        async with self._translate("remember_caller"), self._redis.pipeline(transaction=True) as pipe:
            for _ in range(_MAX_ATTEMPTS):
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    previous = _parse(CallerMemory, raw) if raw is not None else None
                    memory = merge_caller(previous, caller_id, summary, call_id)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, memory.model_dump_json(), px=self._caller_ttl_ms)
                    if call_id is not None:
                        pipe.sadd(self._calls_key(caller_id), call_id)
                    pipe.pexpire(self._calls_key(caller_id), self._caller_ttl_ms)
                    await pipe.execute()
                    return memory
                except WatchError:
                    continue
        raise MemoryStoreError(f"caller memory kept changing under {_MAX_ATTEMPTS} attempts")

    async def recall_caller(self, caller_id: str) -> CallerMemory | None:
        """The caller's memory, or None."""
        async with self._translate("recall_caller"):
            raw = await self._redis.get(self._caller_key(caller_id))
        return _parse(CallerMemory, raw) if raw is not None else None

    async def forget_caller(self, caller_id: str) -> None:
        """Delete the caller's memory and every call bound to them, in one transaction."""
        calls_key = self._calls_key(caller_id)
        async with self._translate("forget_caller"), self._redis.pipeline(transaction=True) as pipe:
            for _ in range(_MAX_ATTEMPTS):
                try:
                    # WATCH: a call bound while we delete would otherwise survive the forget.
                    await pipe.watch(calls_key)
                    call_ids = [_text(c) for c in await pipe.smembers(calls_key)]
                    keys = [self._caller_key(caller_id), calls_key]
                    for call_id in call_ids:
                        keys += [self._messages_key(call_id), self._summary_key(call_id)]
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.delete(*keys)
                    await pipe.execute()
                    return
                except WatchError:
                    continue
        raise MemoryStoreError(f"caller's calls kept changing under {_MAX_ATTEMPTS} attempts")

    async def aclose(self) -> None:
        """Close the connection pool."""
        with contextlib.suppress(RedisError, OSError):
            await self._redis.aclose()

    # ---- keys and errors ----------------------------------------------------------------------

    def _messages_key(self, call_id: str) -> str:
        return f"{self._prefix}call:{call_id}:messages"

    def _summary_key(self, call_id: str) -> str:
        return f"{self._prefix}call:{call_id}:summary"

    def _caller_key(self, caller_id: str) -> str:
        return f"{self._prefix}caller:{caller_id}"

    def _calls_key(self, caller_id: str) -> str:
        return f"{self._prefix}caller:{caller_id}:calls"

    @contextlib.asynccontextmanager
    async def _translate(self, operation: str) -> AsyncIterator[None]:
        try:
            yield
        except WatchError:
            raise
        except (RedisError, OSError, TimeoutError) as exc:
            raise MemoryStoreError(
                f"session memory {operation} failed on Redis at {self._url_for_errors}: {exc}"
            ) from exc


def _text(value: bytes | str) -> str:
    # The client decodes responses; redis-py's types just cannot say so.
    return value.decode() if isinstance(value, bytes) else value


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _message(raw: str) -> Message:
    try:
        data = json.loads(raw)
        return Message(role=data["role"], content=data["content"])
    except (ValueError, KeyError, TypeError) as exc:
        raise MemoryStoreError(f"unreadable message in session memory: {raw[:80]!r}") from exc


def _parse(model: type[_M], raw: Any) -> _M:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise MemoryStoreError(f"unreadable {model.__name__} in session memory") from exc
