"""Folding turns into a :class:`CallSummary`: extractive by default, an LLM hook when configured.

The extractive summariser needs no model and no network, and never invents a fact: it keeps the
caller's name, the numbers said, the intents the agent recognised, the caller's questions the agent
has not answered yet and what the agent promised to do. Folding is incremental (old summary plus
newly folded turns gives the new summary), so a call of any length costs the same per fold.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Protocol, TypeVar

from voiceagent.agents import IntentMatcher, Message
from voiceagent.agents.text import content_terms
from voiceagent.errors import VoiceAgentError
from voiceagent.memory.numbers import find_numbers
from voiceagent.memory.summary import ITEM_MAX_CHARS, CallSummary, NumberFact

__all__ = ["ExtractiveSummarizer", "LLMSummarizer", "Summarizer", "extract_name"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# Lists are capped so a summary cannot grow with the call; the budget trims further if needed.
_MAX_NUMBERS = 12
_MAX_INTENTS = 8
_MAX_QUESTIONS = 5
_MAX_PROMISES = 5

_NAME_WORD = r"[A-Z][a-zA-Z'\-]+"
# "My name is" is explicit enough to accept a lowercase transcript; "this is" and "I'm" are not
# ("this is about my order", "I'm calling about"), so there the name must be capitalised.
# Only the lead-in ignores case: a second word counts as a surname only when capitalised.
_NAME_EXPLICIT = re.compile(
    r"\b(?i:my name is|my name's|name is)\s+([A-Za-z][a-zA-Z'\-]+(?:\s+[A-Z][a-zA-Z'\-]+)?)"
)
_NAME_INTRO = re.compile(rf"\b(?:[Tt]his is|[Ii]t's|[Ii] am|[Ii]'m)\s+({_NAME_WORD}(?:\s+{_NAME_WORD})?)")
_NOT_NAMES = frozenset(
    str.split(
        """
    a an the about calling just not so very really sorry here there still trying looking wondering
    going good fine okay ok yes no hi hello hey what when where why how in on at from with i
    monday tuesday wednesday thursday friday saturday sunday
    """
    )
)
_SENTENCE = re.compile(r"[^.?!]+[.?!]?")
_QUESTION_START = re.compile(
    r"^\s*(what|when|where|why|how|who|which|can|could|do|does|did|is|are|will|would|should|may)\b",
    re.IGNORECASE,
)
_PROMISE = re.compile(
    r"\b(i will|i'll|we will|we'll|i am going to|i'm going to|we are going to|we're going to|"
    r"you will receive|you'll receive|you will get|you'll get)\b",
    re.IGNORECASE,
)
# An agent reply with these does not answer the question it follows.
_UNSURE = re.compile(
    r"\b(not sure|don't know|do not know|didn't catch|did not catch|didn't get|sorry|can't help|"
    r"cannot help|let me check|i'll find out|i will find out)\b",
    re.IGNORECASE,
)


class Summarizer(Protocol):
    """Folds turns into a summary. Implementations must not lose facts already in ``summary``."""

    async def fold(self, summary: CallSummary, messages: Sequence[Message]) -> CallSummary:
        """The summary of everything in ``summary`` plus ``messages`` (oldest first)."""
        ...


class LLMSummarizer(Protocol):
    """A hook that improves an extractive summary with a language model, when one is configured.

    It gets the extractive result and the turns it came from and returns a summary of the same
    shape; a :class:`voiceagent.errors.VoiceAgentError` makes the extractive result stand.
    """

    async def refine(self, summary: CallSummary, messages: Sequence[Message]) -> CallSummary:
        """A better summary of ``messages`` on top of ``summary``."""
        ...


def extract_name(text: str) -> str | None:
    """The caller's name if ``text`` introduces them ("my name is Maria", "this is Dev Patel")."""
    for pattern in (_NAME_EXPLICIT, _NAME_INTRO):
        for match in pattern.finditer(text):
            words = match.group(1).split()
            while words and words[-1].lower() in _NOT_NAMES:
                words.pop()
            if words and words[0].lower() not in _NOT_NAMES:
                return " ".join(w[:1].upper() + w[1:] for w in words)
    return None


class ExtractiveSummarizer:
    """The default :class:`Summarizer`: regular expressions and the agent's intent matcher."""

    def __init__(self, matcher: IntentMatcher | None = None, *, llm: LLMSummarizer | None = None) -> None:
        self._matcher = matcher
        self._llm = llm

    async def fold(self, summary: CallSummary, messages: Sequence[Message]) -> CallSummary:
        """Add the facts of ``messages`` to ``summary``; refined by the LLM hook if one is set."""
        folded = self.fold_now(summary, messages)
        if self._llm is None:
            return folded
        try:
            return await self._llm.refine(folded, messages)
        except VoiceAgentError as exc:
            logger.warning("LLM summariser failed, keeping the extractive summary: %s", exc)
            return folded

    def fold_now(self, summary: CallSummary, messages: Sequence[Message]) -> CallSummary:
        """The extractive fold, synchronously (no LLM)."""
        name = summary.caller_name
        numbers = list(summary.numbers)
        intents = list(summary.intents)
        questions = list(summary.open_questions)
        promises = list(summary.promises)
        for message in messages:
            text = message.content
            if message.role == "user":
                name = extract_name(text) or name
                _add_all(numbers, [NumberFact(kind=n.kind, value=n.value) for n in find_numbers(text)])
                intent = self._intent(text)
                if intent is not None:
                    _add_all(intents, [intent])
                _add_all(questions, [_clip(q) for q in _questions(text)])
            elif message.role == "assistant":
                questions = [q for q in questions if not _answers(text, q)]
                _add_all(promises, [_clip(p) for p in _promises(text)])
        return CallSummary(
            caller_name=name,
            numbers=tuple(_keep_important_numbers(numbers)),
            intents=tuple(intents[-_MAX_INTENTS:]),
            open_questions=tuple(questions[-_MAX_QUESTIONS:]),
            promises=tuple(promises[-_MAX_PROMISES:]),
            turns_folded=summary.turns_folded + len(messages),
        )

    def _intent(self, text: str) -> str | None:
        if self._matcher is None:
            return None
        match = self._matcher.match(text)
        return match.intent.name if match.intent is not None else None


def _add_all(items: list[_T], new: Sequence[_T]) -> None:
    # A repeated fact moves to the end: it is recent again, and trimming drops the oldest first.
    for item in new:
        if item in items:
            items.remove(item)
        items.append(item)


def _keep_important_numbers(numbers: list[NumberFact]) -> list[NumberFact]:
    # Over the cap, give up plain numbers and amounts before order and phone numbers.
    for kind in ("number", "amount", "phone", "order"):
        while len(numbers) > _MAX_NUMBERS:
            index = next((i for i, n in enumerate(numbers) if n.kind == kind), None)
            if index is None:
                break
            del numbers[index]
    return numbers


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.findall(text) if s.strip()]


def _questions(text: str) -> list[str]:
    return [s for s in _sentences(text) if s.endswith("?") or _QUESTION_START.match(s)]


def _promises(text: str) -> list[str]:
    return [s for s in _sentences(text) if _PROMISE.search(s)]


def _answers(reply: str, question: str) -> bool:
    """Whether an agent reply answers a question: it talks about the same thing, and is not unsure."""
    if _UNSURE.search(reply):
        return False
    return bool(set(content_terms(reply)) & set(content_terms(question)))


def _clip(text: str) -> str:
    return text if len(text) <= ITEM_MAX_CHARS else text[: ITEM_MAX_CHARS - 1].rstrip() + "…"
