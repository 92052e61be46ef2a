"""Cut streamed reply text into clauses, so speech starts after the first clause, not the reply."""

from __future__ import annotations

import re

__all__ = ["ClauseSplitter"]

# Only punctuation followed by whitespace ends a clause: "9.99" and "4:30" stay whole.
_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*\s+")
_CLAUSE_END = re.compile(r"[,;:—]\s+")


class ClauseSplitter:
    """``push`` text deltas, get back finished clauses; ``flush`` returns the rest.

    Sentences always end a clause; commas and the like only once the clause has ``min_chars``, so
    the TTS never gets a lone "Yes," that would sound clipped.
    """

    def __init__(self, min_chars: int = 16) -> None:
        self._pending = ""
        self._min_chars = min_chars

    def push(self, text: str) -> list[str]:
        self._pending += text
        out: list[str] = []
        while True:
            cut = self._next_cut()
            if cut is None:
                return out
            clause, self._pending = self._pending[:cut].strip(), self._pending[cut:]
            if clause:
                out.append(clause)

    def flush(self) -> list[str]:
        rest, self._pending = self._pending.strip(), ""
        return [rest] if rest else []

    def _next_cut(self) -> int | None:
        sentence = _SENTENCE_END.search(self._pending)
        for match in _CLAUSE_END.finditer(self._pending):
            if sentence is not None and match.start() > sentence.start():
                break
            if match.start() >= self._min_chars:
                return match.end()
        return sentence.end() if sentence is not None else None
