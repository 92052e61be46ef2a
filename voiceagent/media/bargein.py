"""Barge-in: what the media layer does when the caller makes a sound while the agent is audible.

The decision is two-stage, because the two targets pull apart: the agent must fall silent within
~100 ms of a real interruption, yet an "uh-huh", a cough or a door must not stop it. So the first
stage only *pauses* playout (nothing is dropped), after ``onset_ms`` of voice. The second stage
then has time to decide:

- voice that goes on for ``interrupt_ms``: a real interruption → stop;
- a sound shorter than ``noise_max_ms``, then quiet: noise → resume;
- a short utterance, then quiet: transcribe it; only backchannel words → resume, else stop
  ("wait", "no", "stop" are short too);
- a pause that lasts ``max_pause_ms`` without a decision → stop.

Stopping flushes the queue and truncates the answer at the samples played before the pause, so
the short pause costs the caller nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from voiceagent.agents.definition import BargeInPolicy

__all__ = ["BargeInDetector", "BargeInVerdict", "SnippetTranscript", "is_backchannel"]

VerdictKind = Literal["pause", "resume", "stop", "classify"]

_WORD = re.compile(r"[\w'-]+|[^\W\d_]", re.UNICODE)


@dataclass(frozen=True)
class SnippetTranscript:
    """What a transcriber heard in a short utterance, and how sure it was (mean log-probability)."""

    text: str
    logprob: float = 0.0


@dataclass(frozen=True)
class BargeInVerdict:
    """What to do now. ``onset_ms``/``end_ms`` bound the caller's sound on the media clock."""

    kind: VerdictKind
    reason: str
    onset_ms: float
    end_ms: float


def is_backchannel(text: str, backchannels: list[str]) -> bool:
    """True when ``text`` says nothing but backchannel words and phrases (or nothing at all)."""
    phrases = sorted({tuple(_WORD.findall(p.lower())) for p in backchannels} - {()}, key=len, reverse=True)
    tokens = _WORD.findall(text.lower())
    i = 0
    while i < len(tokens):
        match = next((p for p in phrases if tuple(tokens[i : i + len(p)]) == p), None)
        if match is not None:
            i += len(match)
        elif _made_of(tokens[i], [p[0] for p in phrases if len(p) == 1 and not p[0].isascii()]):
            i += 1  # CJK is not space-separated: "嗯嗯" is two backchannels in one token
        else:
            return False
    return True


def _made_of(token: str, pieces: list[str]) -> bool:
    reachable = [True] + [False] * len(token)
    for end in range(1, len(token) + 1):
        reachable[end] = any(
            reachable[end - len(p)] and token.endswith(p, 0, end) for p in pieces if len(p) <= end
        )
    return bool(pieces) and reachable[-1]


class BargeInDetector:
    """Per-call state machine fed with VAD windows while the agent is audible."""

    def __init__(self, policy: BargeInPolicy, *, threshold: float = 0.5) -> None:
        self.policy = policy
        self.threshold = threshold
        self.release = max(0.05, threshold - 0.15)
        self.state: Literal["idle", "paused", "classifying"] = "idle"
        self._run_ms = 0.0
        self._onset_ms = 0.0
        self._voiced_ms = 0.0
        self._last_voiced_end_ms = 0.0

    def reset(self) -> None:
        self.state = "idle"
        self._run_ms = 0.0

    def update(
        self, probability: float, start_ms: float, end_ms: float, *, echo: bool
    ) -> BargeInVerdict | None:
        """One VAD window of the (echo-cancelled) caller leg; ``echo``: it may be the agent's echo."""
        if not self.policy.enabled:
            return None
        voiced = probability >= (self.threshold if self.state == "idle" else self.release) and not echo
        if self.state == "idle":
            return self._idle(voiced, probability >= self.policy.sure_onset_probability, start_ms, end_ms)
        if voiced:
            self._voiced_ms += end_ms - start_ms
            self._last_voiced_end_ms = end_ms
            if self.state == "classifying" or self._voiced_ms >= self.policy.interrupt_ms:
                return self._stop("speech", end_ms)
        elif self.state == "paused" and end_ms - self._last_voiced_end_ms >= self.policy.resume_gap_ms:
            if self._voiced_ms < self.policy.noise_max_ms:
                return self._resume("noise", end_ms)
            self.state = "classifying"
            return BargeInVerdict("classify", "short utterance", self._onset_ms, self._last_voiced_end_ms)
        if end_ms - self._onset_ms >= self.policy.max_pause_ms:
            return self._stop("undecided", end_ms)
        return None

    @property
    def prompt(self) -> str:
        """Words to prime the transcriber with, so it spells backchannels as the list does."""
        return ". ".join(w.capitalize() for w in self.policy.backchannels if w.isascii()) + "."

    def classified(self, transcript: SnippetTranscript, now_ms: float) -> BargeInVerdict | None:
        """The transcript of a short utterance, once :meth:`update` asked for it."""
        if self.state != "classifying":
            return None  # decided meanwhile (the caller went on talking)
        if is_backchannel(transcript.text, self.policy.backchannels):
            return self._resume("backchannel", now_ms)
        words = len(_WORD.findall(transcript.text))
        if words <= self.policy.unsure_max_words and transcript.logprob < self.policy.unsure_logprob:
            return self._resume("backchannel", now_ms)
        return self._stop("words", now_ms)

    def _idle(self, voiced: bool, sure: bool, start_ms: float, end_ms: float) -> BargeInVerdict | None:
        if not voiced:
            self._run_ms = 0.0
            return None
        if self._run_ms == 0.0:
            self._onset_ms = start_ms
        self._run_ms += end_ms - start_ms
        if self._run_ms < self.policy.onset_ms and not sure:
            return None
        self.state = "paused"
        self._voiced_ms = self._run_ms
        self._last_voiced_end_ms = end_ms
        self._run_ms = 0.0
        return BargeInVerdict("pause", "voice", self._onset_ms, end_ms)

    def _resume(self, reason: str, now_ms: float) -> BargeInVerdict:
        self.state = "idle"
        return BargeInVerdict("resume", reason, self._onset_ms, now_ms)

    def _stop(self, reason: str, now_ms: float) -> BargeInVerdict:
        self.state = "idle"
        return BargeInVerdict("stop", reason, self._onset_ms, self._last_voiced_end_ms)
