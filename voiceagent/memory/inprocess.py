"""Session memory in this process's dictionaries: the default when no Redis is configured.

Nothing survives the process, and two processes do not share it; use
:class:`~voiceagent.memory.RedisMemory` for that. TTLs are checked lazily on access, on the
monotonic clock, so a wall-clock jump does not expire or revive anything.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from voiceagent.agents import Message
from voiceagent.memory.budget import MIN_BUDGET_CHARS, fold_to_budget
from voiceagent.memory.extract import ExtractiveSummarizer, Summarizer
from voiceagent.memory.store import DEFAULT_CALL_TTL_S, merge_caller
from voiceagent.memory.summary import CallerMemory, CallSummary, Context

__all__ = ["InProcessMemory"]


@dataclass
class _Call:
    messages: list[Message] = field(default_factory=list)
    summary: CallSummary = field(default_factory=CallSummary)
    folded: int = 0
    expires_at: float = 0.0


@dataclass
class _Caller:
    memory: CallerMemory | None = None
    calls: set[str] = field(default_factory=set)
    expires_at: float = 0.0


class InProcessMemory:
    """:class:`~voiceagent.memory.SessionMemory` in dictionaries; one asyncio loop at a time."""

    def __init__(
        self,
        *,
        budget_chars: int = 6000,
        caller_ttl_s: float = 30 * 86400.0,
        call_ttl_s: float = DEFAULT_CALL_TTL_S,
        summarizer: Summarizer | None = None,
    ) -> None:
        if budget_chars < MIN_BUDGET_CHARS:
            raise ValueError(f"budget_chars must be at least {MIN_BUDGET_CHARS}")
        self._budget_chars = budget_chars
        self._caller_ttl_s = caller_ttl_s
        self._call_ttl_s = call_ttl_s
        self._summarizer = summarizer if summarizer is not None else ExtractiveSummarizer()
        self._calls: dict[str, _Call] = {}
        self._callers: dict[str, _Caller] = {}
        # Folding awaits the summariser; the lock keeps two folds of one call from interleaving.
        self._fold_lock = asyncio.Lock()

    @property
    def budget_chars(self) -> int:
        """The most characters :meth:`context` returns."""
        return self._budget_chars

    async def append(self, call_id: str, message: Message) -> None:
        """Add one turn to the end of a call's conversation."""
        call = self._open_call(call_id)
        call.messages.append(message)
        call.expires_at = time.monotonic() + self._call_ttl_s

    async def messages(self, call_id: str) -> list[Message]:
        """Every turn of the call, oldest first."""
        call = self._call(call_id)
        return list(call.messages) if call is not None else []

    async def context(self, call_id: str) -> Context:
        """Summary plus recent turns within the budget, folding old turns into the summary."""
        async with self._fold_lock:
            call = self._call(call_id)
            if call is None:
                return Context(CallSummary(), [])
            pending = call.messages[call.folded :]
            result = await fold_to_budget(call.summary, pending, self._budget_chars, self._summarizer)
            if result.newly_folded:
                call.summary, call.folded = result.summary, call.folded + result.newly_folded
            return Context(result.summary, result.recent)

    async def summary(self, call_id: str) -> CallSummary:
        """A summary of the whole call; stores nothing."""
        call = self._call(call_id)
        if call is None:
            return CallSummary()
        return await self._summarizer.fold(call.summary, call.messages[call.folded :])

    async def bind_caller(self, call_id: str, caller_id: str) -> None:
        """Record the call as the caller's, for :meth:`forget_caller`."""
        caller = self._open_caller(caller_id)
        caller.calls.add(call_id)
        caller.expires_at = max(caller.expires_at, time.monotonic() + self._caller_ttl_s)

    async def remember_caller(
        self, caller_id: str, summary: CallSummary, *, call_id: str | None = None
    ) -> CallerMemory:
        """Merge a call's summary into the caller's memory and restart its TTL."""
        caller = self._open_caller(caller_id)
        caller.memory = merge_caller(caller.memory, caller_id, summary, call_id)
        if call_id is not None:
            caller.calls.add(call_id)
        caller.expires_at = time.monotonic() + self._caller_ttl_s
        return caller.memory

    async def recall_caller(self, caller_id: str) -> CallerMemory | None:
        """The caller's memory, or None."""
        caller = self._caller(caller_id)
        return caller.memory if caller is not None else None

    async def forget_caller(self, caller_id: str) -> None:
        """Delete the caller's memory and every call bound to them."""
        caller = self._callers.pop(caller_id, None)
        if caller is not None:
            for call_id in caller.calls:
                self._calls.pop(call_id, None)

    async def forget_call(self, call_id: str) -> None:
        """Delete one call's turns and summary."""
        self._calls.pop(call_id, None)

    async def aclose(self) -> None:
        """Drop everything held."""
        self._calls.clear()
        self._callers.clear()

    def _call(self, call_id: str) -> _Call | None:
        call = self._calls.get(call_id)
        if call is not None and call.expires_at <= time.monotonic():
            del self._calls[call_id]
            call = None
        return call

    def _open_call(self, call_id: str) -> _Call:
        call = self._call(call_id)
        if call is None:
            call = self._calls[call_id] = _Call()
        return call

    def _caller(self, caller_id: str) -> _Caller | None:
        caller = self._callers.get(caller_id)
        if caller is not None and caller.expires_at <= time.monotonic():
            del self._callers[caller_id]
            caller = None
        return caller

    def _open_caller(self, caller_id: str) -> _Caller:
        caller = self._caller(caller_id)
        if caller is None:
            caller = self._callers[caller_id] = _Caller()
        return caller
