"""Audio for the media layer: 20 ms PCM16 frames, resampling, audio files, G.711, and Silero VAD.

``SileroVad`` imports onnxruntime only when a detector is created, so importing this package stays cheap.
"""

from __future__ import annotations

from voiceagent.audio.frame_resample import FrameResampler
from voiceagent.audio.frames import (
    FRAME_MS,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    Framer,
    float_to_pcm16,
    pcm16_to_float,
    rms_dbfs,
    silence,
)
from voiceagent.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from voiceagent.audio.resample import StreamResampler, resample
from voiceagent.audio.vad import DEFAULT_SILENCE_DBFS, SileroVad, score_windows
from voiceagent.audio.wav import AudioClip, read_audio, to_pipeline, write_wav

__all__ = [
    "DEFAULT_SILENCE_DBFS",
    "FRAME_MS",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "AudioClip",
    "FrameResampler",
    "Framer",
    "SileroVad",
    "StreamResampler",
    "alaw_decode",
    "alaw_encode",
    "float_to_pcm16",
    "pcm16_to_float",
    "read_audio",
    "resample",
    "rms_dbfs",
    "score_windows",
    "silence",
    "to_pipeline",
    "ulaw_decode",
    "ulaw_encode",
    "write_wav",
]
