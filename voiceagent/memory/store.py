"""The session-memory interface, and :func:`build_memory` to pick a store from settings.

Two kinds of memory sit behind one :class:`SessionMemory`:

- per call: every turn in order (:meth:`~SessionMemory.append`, :meth:`~SessionMemory.messages`)
  and a bounded :meth:`~SessionMemory.context` (rolling summary plus recent turns) for the brain;
- per caller (phone number or an integrator's id): a summary that outlives the call, with a TTL,
  and :meth:`~SessionMemory.forget_caller` for privacy requests.

Both implementations (:class:`~voiceagent.memory.InProcessMemory`,
:class:`~voiceagent.memory.RedisMemory`) pass the same contract tests.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol

from voiceagent.agents import Message
from voiceagent.memory.summary import CallerMemory, CallSummary, Context

if TYPE_CHECKING:
    from voiceagent.agents import IntentMatcher
    from voiceagent.config import Settings

__all__ = ["DEFAULT_CALL_TTL_S", "SessionMemory", "build_memory", "merge_caller"]

# Per-call data outlives a call by this much: long enough for the end-of-call summary, webhooks and
# a transfer back, short enough that abandoned calls do not pile up.
DEFAULT_CALL_TTL_S = 86400.0


class SessionMemory(Protocol):
    """Conversation memory for calls and callers. Every method is safe to call concurrently."""

    async def append(self, call_id: str, message: Message) -> None:
        """Add one turn to the end of a call's conversation."""
        ...

    async def messages(self, call_id: str) -> list[Message]:
        """Every turn of the call, oldest first (empty for an unknown call)."""
        ...

    async def context(self, call_id: str) -> Context:
        """The summary of older turns and the recent turns, together within the memory budget.

        Folds the oldest turns into the stored summary when the budget is exceeded; concurrent
        callers never fold a turn twice or lose one.
        """
        ...

    async def summary(self, call_id: str) -> CallSummary:
        """A summary of the whole call (folded and recent turns); stores nothing."""
        ...

    async def bind_caller(self, call_id: str, caller_id: str) -> None:
        """Record that a call is the caller's, so :meth:`forget_caller` deletes it as well."""
        ...

    async def remember_caller(
        self, caller_id: str, summary: CallSummary, *, call_id: str | None = None
    ) -> CallerMemory:
        """Merge a call's summary into what is kept about the caller, and restart its TTL."""
        ...

    async def recall_caller(self, caller_id: str) -> CallerMemory | None:
        """What is kept about the caller, or None if nothing is (never known, expired, forgotten)."""
        ...

    async def forget_caller(self, caller_id: str) -> None:
        """Delete everything about the caller: their memory and every call bound to them."""
        ...

    async def forget_call(self, call_id: str) -> None:
        """Delete one call's turns and summary."""
        ...

    async def aclose(self) -> None:
        """Release connections; the memory must not be used afterwards."""
        ...


def merge_caller(
    previous: CallerMemory | None, caller_id: str, summary: CallSummary, call_id: str | None
) -> CallerMemory:
    """The caller memory after one more call: shared by both stores so they merge alike."""
    now = time.time()
    if previous is None:
        return CallerMemory(caller_id=caller_id, summary=summary, last_call_id=call_id, updated_at=now)
    return CallerMemory(
        caller_id=caller_id,
        summary=previous.summary.merged(summary),
        calls=previous.calls + 1,
        last_call_id=call_id or previous.last_call_id,
        updated_at=now,
    )


def build_memory(settings: Settings, *, matcher: IntentMatcher | None = None) -> SessionMemory:
    """Redis memory if ``settings.redis_url`` is set, else in-process memory (lost on exit)."""
    from voiceagent.memory.extract import ExtractiveSummarizer
    from voiceagent.memory.inprocess import InProcessMemory
    from voiceagent.memory.redis_store import RedisMemory

    summarizer = ExtractiveSummarizer(matcher)
    if settings.redis_url is None:
        return InProcessMemory(
            budget_chars=settings.memory_budget_chars,
            caller_ttl_s=settings.caller_memory_ttl_s,
            summarizer=summarizer,
        )
    return RedisMemory(
        settings.redis_url,
        budget_chars=settings.memory_budget_chars,
        caller_ttl_s=settings.caller_memory_ttl_s,
        summarizer=summarizer,
    )
