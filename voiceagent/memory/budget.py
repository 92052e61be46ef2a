"""Keeping a call's context under its budget: fold the oldest turns into the summary.

Both stores call :func:`fold_to_budget` inside their read-modify-write, so the rule is the same
everywhere. Folding goes down to a share of the budget rather than to the budget itself: the next
few turns then fit without another fold, so a store writes its summary once every several turns
instead of on every turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from voiceagent.agents import Message
from voiceagent.memory.extract import Summarizer
from voiceagent.memory.summary import CallSummary, context_chars

__all__ = [
    "CHARS_PER_TOKEN",
    "MIN_BUDGET_CHARS",
    "Folded",
    "budget_chars_for_tokens",
    "fold_to_budget",
    "summary_limit_chars",
]

# English text runs about four characters per token in GPT-style tokenisers; near enough for a budget.
CHARS_PER_TOKEN = 4
# Below this a summary with a name and an order number no longer fits next to any turn.
MIN_BUDGET_CHARS = 400
# After a fold, recent turns take at most this share of what the summary leaves free.
_RECENT_AFTER_FOLD = 0.6
# The summary may take at most this share of the budget; the rest is for verbatim turns.
_SUMMARY_SHARE = 0.4


@dataclass(frozen=True)
class Folded:
    """The outcome of :func:`fold_to_budget`: the new summary and how many more turns it holds."""

    summary: CallSummary
    newly_folded: int
    recent: list[Message]


def budget_chars_for_tokens(tokens: int) -> int:
    """A character budget for a context of about ``tokens`` tokens (see :data:`CHARS_PER_TOKEN`)."""
    return tokens * CHARS_PER_TOKEN


def summary_limit_chars(budget_chars: int) -> int:
    """The most characters a rendered summary may take under ``budget_chars``."""
    return int(budget_chars * _SUMMARY_SHARE)


async def fold_to_budget(
    summary: CallSummary, pending: Sequence[Message], budget_chars: int, summarizer: Summarizer
) -> Folded:
    """Fold the oldest of ``pending`` into ``summary`` until summary plus the rest fit the budget.

    ``pending`` are the turns not yet folded, oldest first. Nothing is folded while they fit.
    A single turn longer than what is left is folded too, so the bound holds for any input.
    """
    if budget_chars < MIN_BUDGET_CHARS:
        raise ValueError(f"memory budget of {budget_chars} chars is below {MIN_BUDGET_CHARS}")
    recent = list(pending)
    if context_chars(summary, recent) <= budget_chars:
        return Folded(summary, 0, recent)
    folded = 0
    while context_chars(summary, recent) > budget_chars and recent:
        room = budget_chars - len(summary.render())
        target = int(max(room, 0) * _RECENT_AFTER_FOLD)
        count = _count_to_fold(recent, target)
        summary = (await summarizer.fold(summary, recent[:count])).trimmed(summary_limit_chars(budget_chars))
        recent = recent[count:]
        folded += count
    if context_chars(summary, recent) > budget_chars:
        summary = summary.trimmed(summary_limit_chars(budget_chars))
    return Folded(summary, folded, recent)


def _count_to_fold(recent: Sequence[Message], target_chars: int) -> int:
    """How many of the oldest turns to fold so the rest take at most ``target_chars`` (at least 1)."""
    remaining = sum(len(m.content) for m in recent)
    count = 0
    while count < len(recent) and (remaining > target_chars or count == 0):
        remaining -= len(recent[count].content)
        count += 1
    return count
