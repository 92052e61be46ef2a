"""Speech recognition with faster-whisper on a packaged (or user-supplied) Whisper model."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from voiceagent.errors import ModelError, ModelNotFoundError
from voiceagent.packaged_models import resolve

__all__ = ["WhisperAsr"]

logger = logging.getLogger(__name__)

# A segment Whisper itself thinks is probably not speech is where it invents "Thank you." on noise.
_NO_SPEECH_PROB = 0.6
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


class WhisperAsr:
    """Blocking transcription of one utterance (run it in an executor thread).

    ``model`` is a packaged model name, a local CTranslate2 Whisper directory, or a hub id that is
    already in the local Hugging Face cache (it is never downloaded).
    """

    sample_rate = 16000

    def __init__(
        self,
        model: str,
        *,
        language: str | None = "en",
        threads: int = 2,
        cache_dir: Path | None = None,
    ) -> None:
        from faster_whisper import WhisperModel

        self.language = language
        try:
            source = str(resolve(model, "asr", cache_dir).path)
            local_only = False
        except ModelNotFoundError:
            if not _HUB_ID.match(model):
                raise
            source, local_only = model, True
        try:
            self._model = WhisperModel(
                source, device="cpu", compute_type="int8", cpu_threads=threads, local_files_only=local_only
            )
        except Exception as exc:  # ctranslate2/huggingface raise many unrelated types
            raise ModelError(f"cannot load ASR model {model!r}: {exc}") from exc
        self.name = model

    def transcribe(self, pcm16: npt.NDArray[np.int16]) -> str:
        """Text of one 16 kHz mono utterance; empty when nothing was said."""
        return self.transcribe_scored(pcm16)[0]

    def transcribe_scored(
        self, pcm16: npt.NDArray[np.int16], *, prompt: str | None = None
    ) -> tuple[str, float]:
        """Text and Whisper's mean token log-probability (0 for no text); ``prompt`` biases the words."""
        if pcm16.size < self.sample_rate // 10:
            return "", 0.0
        audio = pcm16.astype(np.float32) / 32768.0
        segments, _info = self._model.transcribe(
            audio,
            language=self.language,
            beam_size=1,
            vad_filter=False,
            condition_on_previous_text=False,
            without_timestamps=True,
            initial_prompt=prompt,
        )
        kept = [s for s in segments if _is_speech(s) and s.text.strip()]
        if not kept:
            return "", 0.0
        text = " ".join(s.text.strip() for s in kept)
        return text, float(min(s.avg_logprob for s in kept))

    def warm_up(self) -> None:
        """Run once on a short tone so the first real call does not pay for lazy initialisation."""
        t = np.arange(self.sample_rate, dtype=np.float32) / self.sample_rate
        self.transcribe((np.sin(2 * np.pi * 220 * t) * 3000).astype(np.int16))


def _is_speech(segment: Any) -> bool:
    return float(getattr(segment, "no_speech_prob", 0.0)) < _NO_SPEECH_PROB
