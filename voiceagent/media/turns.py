"""Caller turn detection from VAD probabilities: onset, pause, resume, end of turn."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["EndOfTurn", "TurnDetector", "TurnEvent"]

# (quiet so far in ms, length of the turn so far in ms) -> True: the turn is over now; False: not
# yet, whatever the hangover says; None: leave it to the hangover. Where a smarter end-of-turn model
# (prosody, or the words so far) plugs in; it is asked once per VAD window of quiet.
EndOfTurn = Callable[[float, float], bool | None]
# Even a model that keeps saying "not yet" cannot hold the floor for the caller longer than this.
_MAX_QUIET_MS = 3000.0

TurnEventKind = Literal["speech_started", "speech_paused", "speech_resumed", "speech_stopped"]


@dataclass(frozen=True)
class TurnEvent:
    """``at_ms`` is media time on the inbound leg (ms of caller audio since the call began)."""

    kind: TurnEventKind
    at_ms: float


class TurnDetector:
    """Hysteresis over per-window speech probabilities.

    Speech starts after ``min_speech_ms`` of windows at or above ``threshold`` (so a click does not
    count). Inside a turn, ``speculate_ms`` of quiet gives ``speech_paused`` — early enough to start
    working on an answer — and voice after it gives ``speech_resumed``. ``hangover_ms`` of quiet
    below ``threshold - 0.15`` ends the turn with ``speech_stopped``, which carries the end of the
    last voiced window (when the caller actually stopped), not the moment the hangover ran out.
    """

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        min_speech_ms: float = 100,
        hangover_ms: float = 500,
        speculate_ms: float | None = None,
        end_of_turn: EndOfTurn | None = None,
    ) -> None:
        self.threshold = threshold
        self.release = max(0.05, threshold - 0.15)
        self.min_speech_ms = min_speech_ms
        self.hangover_ms = hangover_ms
        self.speculate_ms = speculate_ms if speculate_ms and speculate_ms < hangover_ms else None
        self.end_of_turn = end_of_turn
        self.speaking = False
        self.paused = False
        self._onset_ms: float | None = None
        self._voiced_ms = 0.0
        self._last_voiced_end_ms = 0.0
        self._now_ms = 0.0

    def update(self, probability: float, start_ms: float, end_ms: float) -> list[TurnEvent]:
        """Feed one VAD window covering ``[start_ms, end_ms)``; returns what changed."""
        self._now_ms = end_ms
        if not self.speaking:
            return self._listen(probability, start_ms, end_ms)
        if probability >= self.release:
            self._last_voiced_end_ms = end_ms
            if self.paused:
                self.paused = False
                return [TurnEvent("speech_resumed", start_ms)]
            return []
        quiet_ms = end_ms - self._last_voiced_end_ms
        if self._turn_over(quiet_ms):
            self.speaking = self.paused = False
            self._onset_ms = None
            return [TurnEvent("speech_stopped", self._last_voiced_end_ms)]
        if self.speculate_ms is not None and not self.paused and quiet_ms >= self.speculate_ms:
            self.paused = True
            return [TurnEvent("speech_paused", self._last_voiced_end_ms)]
        return []

    def _turn_over(self, quiet_ms: float) -> bool:
        if self.end_of_turn is not None and quiet_ms < _MAX_QUIET_MS:
            verdict = self.end_of_turn(quiet_ms, self._last_voiced_end_ms - (self._onset_ms or 0.0))
            if verdict is not None:
                return verdict
        return quiet_ms >= self.hangover_ms

    def force_start(self, onset_ms: float, last_voiced_end_ms: float) -> None:
        """Enter a turn decided elsewhere (a barge-in): the caller has the floor from ``onset_ms``."""
        self.speaking, self.paused = True, False
        self._onset_ms = onset_ms
        self._voiced_ms = 0.0
        self._last_voiced_end_ms = last_voiced_end_ms

    @property
    def silence_ms(self) -> float:
        """How long the caller has been quiet inside the current turn (0 outside one)."""
        return 0.0 if not self.speaking else max(0.0, self._now_ms - self._last_voiced_end_ms)

    def _listen(self, probability: float, start_ms: float, end_ms: float) -> list[TurnEvent]:
        if probability < self.threshold:
            self._onset_ms, self._voiced_ms = None, 0.0
            return []
        if self._onset_ms is None:
            self._onset_ms = start_ms
        self._voiced_ms += end_ms - start_ms
        if self._voiced_ms < self.min_speech_ms:
            return []
        self.speaking = True
        self._last_voiced_end_ms = end_ms
        self._voiced_ms = 0.0
        return [TurnEvent("speech_started", self._onset_ms)]
