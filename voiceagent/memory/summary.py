"""What memory hands back: a structured call summary, a bounded context, and what a caller left.

:class:`CallSummary` is data, not prose, so facts survive any number of folds unchanged and a test
(or the brain) can ask for "the order number" directly; :meth:`CallSummary.render` turns it into
the few lines a prompt gets. Everything is a frozen pydantic model so both stores serialise it the
same way (JSON).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from voiceagent.agents import Message
from voiceagent.memory.numbers import NumberKind

__all__ = ["CallSummary", "CallerMemory", "Context", "NumberFact", "context_chars"]

# Each item of a summary is cut to this many characters: a summary line is a reminder, not a quote.
ITEM_MAX_CHARS = 120
_Item = TypeVar("_Item")
# When a summary must shrink, the kinds of item given up first (oldest item of a kind first).
# Order and phone numbers, and the caller's name, are what a caller hates repeating: kept longest.
_TRIM_ORDER = (
    "intents",
    "open_questions",
    "promises",
    "numbers:number",
    "numbers:amount",
    "numbers:phone",
    "numbers:order",
)


class NumberFact(BaseModel):
    """A number the caller or agent said: an order number, a phone number, an amount, or other."""

    model_config = ConfigDict(frozen=True)

    kind: NumberKind
    value: str


class CallSummary(BaseModel):
    """The facts of the turns folded out of a call's verbatim history, oldest first in each list."""

    model_config = ConfigDict(frozen=True)

    caller_name: str | None = None
    numbers: tuple[NumberFact, ...] = ()
    intents: tuple[str, ...] = ()
    open_questions: tuple[str, ...] = ()
    promises: tuple[str, ...] = ()
    turns_folded: int = Field(default=0, ge=0)

    def numbers_of(self, kind: NumberKind) -> list[str]:
        """Values of the numbers of one kind, oldest first."""
        return [n.value for n in self.numbers if n.kind == kind]

    @property
    def order_numbers(self) -> list[str]:
        """Order (confirmation, tracking, ...) numbers mentioned, oldest first."""
        return self.numbers_of("order")

    def is_empty(self) -> bool:
        """True when nothing worth saying has been gathered."""
        return not (self.caller_name or self.numbers or self.intents or self.open_questions or self.promises)

    def render(self) -> str:
        """A few plain lines for a prompt; empty when there is nothing to say."""
        lines: list[str] = []
        if self.caller_name:
            lines.append(f"Caller name: {self.caller_name}")
        for kind, label in (("order", "Order numbers"), ("phone", "Phone numbers"), ("amount", "Amounts")):
            values = self.numbers_of(kind)  # type: ignore[arg-type]
            if values:
                lines.append(f"{label}: {', '.join(values)}")
        other = self.numbers_of("number")
        if other:
            lines.append(f"Other numbers: {', '.join(other)}")
        if self.intents:
            lines.append(f"Topics: {', '.join(self.intents)}")
        lines.extend(f"Open question: {q}" for q in self.open_questions)
        lines.extend(f"Agent promised: {p}" for p in self.promises)
        return "\n".join(lines)

    def merged(self, newer: CallSummary, *, max_items: int = 12) -> CallSummary:
        """This summary with a later one laid over it: newer facts win and come last, lists capped."""

        def union(old: tuple[_Item, ...], new: tuple[_Item, ...]) -> tuple[_Item, ...]:
            kept = [item for item in old if item not in new] + list(new)
            return tuple(kept[-max_items:])

        return CallSummary(
            caller_name=newer.caller_name or self.caller_name,
            numbers=union(self.numbers, newer.numbers),
            intents=union(self.intents, newer.intents),
            open_questions=union(self.open_questions, newer.open_questions),
            promises=union(self.promises, newer.promises),
            turns_folded=self.turns_folded + newer.turns_folded,
        )

    def trimmed(self, max_chars: int) -> CallSummary:
        """This summary with its least important items dropped until :meth:`render` fits ``max_chars``.

        First every kind of item is cut down to its newest one, least important kind first; only
        then are the last ones given up, so a tight budget keeps a bit of everything.
        """
        summary = self
        for keep in (1, 0):
            for group in _TRIM_ORDER:
                while len(summary.render()) > max_chars and summary._count(group) > keep:
                    summary = summary._without_oldest(group)
        if len(summary.render()) > max_chars:
            summary = summary.model_copy(update={"caller_name": None})
        return summary

    def _count(self, group: str) -> int:
        if group.startswith("numbers"):
            kind = group.partition(":")[2]
            return sum(1 for n in self.numbers if n.kind == kind)
        return len(getattr(self, group))

    def _without_oldest(self, group: str) -> CallSummary:
        if group.startswith("numbers"):
            kind = group.partition(":")[2]
            index = next(i for i, n in enumerate(self.numbers) if n.kind == kind)
            return self.model_copy(update={"numbers": self.numbers[:index] + self.numbers[index + 1 :]})
        items: tuple[str, ...] = getattr(self, group)
        return self.model_copy(update={group: items[1:]})


class CallerMemory(BaseModel):
    """What is kept about one caller across calls, so a new call can pick up where the last ended."""

    model_config = ConfigDict(frozen=True)

    caller_id: str
    summary: CallSummary
    calls: int = Field(default=1, ge=1)
    last_call_id: str | None = None
    updated_at: float = Field(description="Unix time of the latest remember_caller.")

    def recap(self) -> str:
        """One sentence the agent can open with ("Last time you asked about order 4417.")."""
        orders = self.summary.order_numbers
        if orders:
            return f"Last time you asked about order {orders[-1]}."
        if self.summary.intents:
            return f"Last time you asked about {self.summary.intents[-1].replace('_', ' ')}."
        return ""


@dataclass(frozen=True)
class Context:
    """What the brain gets for a call: a summary of the older turns and the recent ones verbatim."""

    summary: CallSummary
    recent: list[Message]

    @property
    def size_chars(self) -> int:
        """Characters this context costs: the rendered summary plus the recent turns' text."""
        return context_chars(self.summary, self.recent)

    def as_messages(self) -> list[Message]:
        """The context as brain history: a system message with the summary (if any), then the turns."""
        rendered = self.summary.render()
        head = [Message("system", "Earlier in this call:\n" + rendered)] if rendered else []
        return head + list(self.recent)


def context_chars(summary: CallSummary, recent: Sequence[Message]) -> int:
    """The size measure the memory budget is in: rendered summary plus message text, in characters."""
    return len(summary.render()) + sum(len(m.content) for m in recent)
