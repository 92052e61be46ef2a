"""Speech synthesis with hibari-tts on its packaged voice (or a compatible local ONNX file)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from voiceagent.errors import ModelError
from voiceagent.packaged_models import resolve

__all__ = ["HibariTts", "trim_silence"]

# hibari pads each synthesis with ~300 ms of silence in front and ~450 ms behind: in front it is
# pure latency before the caller hears anything, behind it is dead air between clauses.
_SILENCE_LEVEL = 0.003  # about -50 dBFS
_KEEP_LEAD_MS = 10
_KEEP_TAIL_MS = 200


def trim_silence(
    audio: npt.NDArray[np.float32],
    sample_rate: int,
    *,
    level: float = _SILENCE_LEVEL,
    keep_lead_ms: float = _KEEP_LEAD_MS,
    keep_tail_ms: float = _KEEP_TAIL_MS,
) -> npt.NDArray[np.float32]:
    """Cut leading and trailing samples below ``level``, keeping a short margin on each side."""
    loud = np.flatnonzero(np.abs(audio) > level)
    if loud.size == 0:
        return audio[:0]
    start = max(0, int(loud[0] - keep_lead_ms * sample_rate / 1000))
    end = min(audio.size, int(loud[-1] + 1 + keep_tail_ms * sample_rate / 1000))
    return audio[start:end]


class HibariTts:
    """Blocking synthesis of one clause at 24 kHz (run it in an executor thread)."""

    sample_rate = 24000

    def __init__(self, model: str, *, speed: float = 1.0, threads: int = 1) -> None:
        path = resolve(model, "tts").path
        try:
            from hibari import Hibari

            # voice="heart" is the bundled one; passing model= keeps hibari from looking elsewhere.
            self._tts = Hibari(voice="heart", model=str(path), threads=threads)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"cannot load TTS model {model!r} ({path}): {exc}") from exc
        self.speed = speed
        self.name = model

    def synthesize(self, text: str) -> npt.NDArray[np.float32]:
        """float32 mono audio at 24 kHz, sentence by sentence with the padding trimmed."""
        # A fixed seed makes the noise component, and so every test and benchmark, repeatable.
        parts = [
            trim_silence(np.asarray(part, dtype=np.float32), self.sample_rate)
            for part in self._tts.stream(text, speed=self.speed, seed=0)
        ]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    def warm_up(self) -> None:
        """Load the grapheme-to-phoneme tables now rather than inside the first call."""
        self.synthesize("Hello.")
