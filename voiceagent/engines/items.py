"""Small pieces every engine needs: ids for protocol objects, and what a caller heard of a reply."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

__all__ = ["SpokenClause", "dtmf_digits", "dtmf_text", "heard_text", "new_id"]

# Keypad presses reach a brain as a user turn of text in this one spelling: rules match the
# digits (an intent's ``dtmf``), and an LLM reads it as what it is.
_DTMF = re.compile(r"^\[pressed ([0-9*#A-D]+)\]$")

_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    """A process-unique id such as ``resp_000042`` for sessions, items and responses."""
    return f"{prefix}_{next(_ids):06d}"


def dtmf_text(digits: str) -> str:
    """The user turn for keypad ``digits``: ``[pressed 1]``."""
    return f"[pressed {digits}]"


def dtmf_digits(text: str) -> str | None:
    """The digits of a :func:`dtmf_text` turn, or None for anything a caller said."""
    match = _DTMF.match(text.strip())
    return match.group(1) if match else None


@dataclass
class SpokenClause:
    """A clause that was synthesised, and where its audio sits in the response."""

    text: str
    start_ms: float
    duration_ms: float


def heard_text(spoken: list[SpokenClause], audio_end_ms: float) -> str:
    """The words of a reply that fit into its first ``audio_end_ms`` of audio.

    Within a clause, words are assumed to take time in proportion to their length; a word counts
    as heard once its midpoint has played, which keeps the error within half a word.
    """
    words: list[str] = []
    for clause in spoken:
        if audio_end_ms >= clause.start_ms + clause.duration_ms:
            words.extend(clause.text.split())
            continue
        if audio_end_ms <= clause.start_ms or clause.duration_ms <= 0:
            break
        played = (audio_end_ms - clause.start_ms) / clause.duration_ms
        tokens = clause.text.split()
        total = sum(len(t) + 1 for t in tokens)
        pos = 0
        for token in tokens:
            if (pos + (len(token) + 1) / 2) / total > played:
                break
            words.append(token)
            pos += len(token) + 1
        break
    return " ".join(words)
