"""Session memory: each call's conversation, a bounded rolling summary, and per-caller memory.

:func:`build_memory` gives :class:`RedisMemory` when ``settings.redis_url`` is set (shared by all
processes, survives restarts with AOF) and :class:`InProcessMemory` otherwise. See docs/memory.md.
"""

from voiceagent.memory.budget import (
    CHARS_PER_TOKEN,
    MIN_BUDGET_CHARS,
    budget_chars_for_tokens,
    fold_to_budget,
)
from voiceagent.memory.extract import ExtractiveSummarizer, LLMSummarizer, Summarizer, extract_name
from voiceagent.memory.inprocess import InProcessMemory
from voiceagent.memory.numbers import FoundNumber, digits_from_words, find_numbers, normalize_numbers
from voiceagent.memory.redis_store import RedisMemory
from voiceagent.memory.store import SessionMemory, build_memory
from voiceagent.memory.summary import CallerMemory, CallSummary, Context, NumberFact

__all__ = [
    "CHARS_PER_TOKEN",
    "MIN_BUDGET_CHARS",
    "CallSummary",
    "CallerMemory",
    "Context",
    "ExtractiveSummarizer",
    "FoundNumber",
    "InProcessMemory",
    "LLMSummarizer",
    "NumberFact",
    "RedisMemory",
    "SessionMemory",
    "Summarizer",
    "budget_chars_for_tokens",
    "build_memory",
    "digits_from_words",
    "extract_name",
    "find_numbers",
    "fold_to_budget",
    "normalize_numbers",
]
