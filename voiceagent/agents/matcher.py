"""Rule-based intent matching: which of an agent's intents a caller's utterance is about.

No model and no randomness: the utterance and every intent example are reduced to content stems
(:mod:`voiceagent.agents.text`), and the best-overlapping example wins. Terms are weighted by how
few intents use them, so "refund" counts for more than "order", and words no intent knows dilute
the score, so off-topic speech falls below the agent's ``match_threshold``. Keywords add
evidence on top; transfer and goodbye phrases are checked first, as exact phrases.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from voiceagent.agents.definition import Action, AgentDefinition, Intent
from voiceagent.agents.text import content_terms, phrase_terms
from voiceagent.engines.items import dtmf_digits

__all__ = ["IntentMatch", "IntentMatcher"]

# F-beta over example coverage (recall) and utterance coverage (precision). Callers pad their
# questions with words no example has, so covering the example counts for more.
_BETA = 1.5
# Words no intent uses count as much as the rarest known word against the utterance: they are
# what makes "order a pizza" not an order question.
_UNKNOWN_TERM_FACTOR = 1.0
# Each keyword hit independently removes this share of the remaining doubt.
_KEYWORD_EVIDENCE = 0.4


@dataclass(frozen=True)
class IntentMatch:
    """The outcome of matching one utterance: what to say and what the call does next."""

    intent: Intent | None
    score: float
    action: Action
    reply: str


@dataclass(frozen=True)
class _Example:
    terms: frozenset[str]
    weight: float


@dataclass(frozen=True)
class _CompiledIntent:
    intent: Intent
    examples: tuple[_Example, ...]
    keywords: tuple[frozenset[str], ...]


class IntentMatcher:
    """Matches utterances against one agent's intents and transfer/goodbye phrases."""

    def __init__(self, agent: AgentDefinition) -> None:
        self._agent = agent
        self._transfer_phrases = _compile_phrases(agent.transfer_phrases)
        self._goodbye_phrases = _compile_phrases(agent.goodbye_phrases)
        vocabularies = [_intent_vocabulary(intent) for intent in agent.intents]
        self._weights = _inverse_intent_frequency(vocabularies)
        self._unknown_weight = _UNKNOWN_TERM_FACTOR * max(self._weights.values(), default=1.0)
        self._intents = tuple(self._compile(intent) for intent in agent.intents)

    @property
    def agent(self) -> AgentDefinition:
        """The agent whose intents this matcher knows."""
        return self._agent

    def match(self, text: str) -> IntentMatch:
        """The best reply for ``text``; the agent's fallback when nothing clears the threshold."""
        digits = dtmf_digits(text)
        if digits is not None:
            # Keypad presses choose by digit, never by words: "[pressed 1]" is not a phrase.
            chosen = next((i for i in self._agent.intents if digits in i.dtmf), None)
            if chosen is None:
                return IntentMatch(intent=None, score=0.0, action="answer", reply=self._agent.fallback)
            return IntentMatch(intent=chosen, score=1.0, action=chosen.action, reply=chosen.answer)
        phrase_hit = self.match_phrases(text)
        if phrase_hit is not None:
            return phrase_hit
        best: _CompiledIntent | None = None
        best_score = 0.0
        terms = frozenset(content_terms(text))
        if terms:
            for compiled in self._intents:
                score = self._score(compiled, terms)
                # Strictly greater: on a tie the intent listed first in the agent file wins.
                if score > best_score:
                    best, best_score = compiled, score
        if best is None or best_score < self._agent.match_threshold:
            return IntentMatch(intent=None, score=best_score, action="answer", reply=self._agent.fallback)
        intent = best.intent
        return IntentMatch(intent=intent, score=best_score, action=intent.action, reply=intent.answer)

    def match_phrases(self, text: str) -> IntentMatch | None:
        """A transfer or goodbye reply if ``text`` contains one of the agent's phrases, else None.

        Transfer wins over goodbye: "no thanks, bye, actually get me an agent" wants a person.
        """
        terms = phrase_terms(text)
        if _contains_any(terms, self._transfer_phrases):
            return IntentMatch(intent=None, score=1.0, action="transfer", reply=self._agent.transfer_reply)
        if _contains_any(terms, self._goodbye_phrases):
            return IntentMatch(intent=None, score=1.0, action="hangup", reply=self._agent.goodbye)
        return None

    def _compile(self, intent: Intent) -> _CompiledIntent:
        examples = []
        for example in intent.examples:
            terms = frozenset(content_terms(example))
            if terms:
                examples.append(_Example(terms, self._weigh(terms)))
        keywords = tuple(kw for kw in (frozenset(content_terms(k)) for k in intent.keywords) if kw)
        return _CompiledIntent(intent, tuple(examples), keywords)

    def _weigh(self, terms: Iterable[str]) -> float:
        return sum(self._weights.get(term, self._unknown_weight) for term in terms)

    def _score(self, compiled: _CompiledIntent, terms: frozenset[str]) -> float:
        utterance_weight = self._weigh(terms)
        example_score = 0.0
        for example in compiled.examples:
            shared = self._weigh(terms & example.terms)
            if shared == 0.0:
                continue
            recall = shared / example.weight
            precision = shared / utterance_weight
            f_score = (1 + _BETA**2) * precision * recall / (_BETA**2 * precision + recall)
            example_score = max(example_score, f_score)
        hits = sum(1 for keyword in compiled.keywords if keyword <= terms)
        keyword_score = 1.0 - (1.0 - _KEYWORD_EVIDENCE) ** hits
        # Independent evidence: either source alone can carry the match, together they add up.
        return 1.0 - (1.0 - example_score) * (1.0 - keyword_score)


def _intent_vocabulary(intent: Intent) -> frozenset[str]:
    vocabulary: set[str] = set()
    for text in (*intent.examples, *intent.keywords):
        vocabulary.update(content_terms(text))
    return frozenset(vocabulary)


def _inverse_intent_frequency(vocabularies: Sequence[frozenset[str]]) -> dict[str, float]:
    counts: dict[str, int] = {}
    for vocabulary in vocabularies:
        for term in vocabulary:
            counts[term] = counts.get(term, 0) + 1
    total = len(vocabularies)
    return {term: 1.0 + math.log(total / count) for term, count in counts.items()}


def _compile_phrases(phrases: Iterable[str]) -> tuple[tuple[str, ...], ...]:
    return tuple(terms for terms in (tuple(phrase_terms(p)) for p in phrases) if terms)


def _contains_any(terms: Sequence[str], phrases: Iterable[tuple[str, ...]]) -> bool:
    return any(_contains(terms, phrase) for phrase in phrases)


def _contains(terms: Sequence[str], phrase: tuple[str, ...]) -> bool:
    size = len(phrase)
    return any(tuple(terms[i : i + size]) == phrase for i in range(len(terms) - size + 1))
