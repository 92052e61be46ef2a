"""Reading audio files of any common format as mono float, and writing PCM16 WAV files atomically."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile as sf

from voiceagent.audio.frames import SAMPLE_RATE, float_to_pcm16
from voiceagent.audio.resample import resample
from voiceagent.errors import AudioError, AudioFormatError

__all__ = ["AudioClip", "read_audio", "to_pipeline", "write_wav"]

MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 192000


# eq=False: the generated __eq__ would compare arrays and raise instead of answering.
@dataclass(frozen=True, eq=False)
class AudioClip:
    """Decoded audio: mono float32 samples, their rate, and how many channels the source had."""

    samples: npt.NDArray[np.float32]  # (n,)
    sample_rate: int
    channels: int

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate


def read_audio(path: str | os.PathLike[str]) -> AudioClip:
    """Read a WAV (any PCM width or float) or anything else libsndfile reads (FLAC, OGG), as mono.

    Channels are averaged. Raises AudioError when the file cannot be opened and AudioFormatError when
    it is not audio, holds no samples, or has a rate outside 8–192 kHz.
    """
    file = Path(path)
    try:
        # Opening it ourselves tells "missing" and "a directory" apart from "not audio"; libsndfile
        # reports all three as one opaque error.
        fh = file.open("rb")
    except FileNotFoundError as exc:
        raise AudioError(f"audio file not found: {file}") from exc
    except IsADirectoryError as exc:
        raise AudioError(f"{file} is a directory, not an audio file") from exc
    except OSError as exc:
        raise AudioError(f"cannot open audio file {file}: {exc.strerror or exc}") from exc
    with fh:
        if os.fstat(fh.fileno()).st_size == 0:
            raise AudioFormatError(f"{file} is empty, not a readable audio file")
        try:
            with sf.SoundFile(fh) as snd:
                sample_rate, channels = snd.samplerate, snd.channels
                if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
                    raise AudioFormatError(
                        f"{file}: sample rate {sample_rate} Hz is outside "
                        f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz"
                    )
                data = snd.read(dtype="float32", always_2d=True)  # (n, channels)
        except sf.SoundFileError as exc:
            raise AudioFormatError(f"{file} is not a readable audio file: {_libsndfile_reason(exc)}") from exc
    if data.shape[0] == 0:
        raise AudioFormatError(f"{file} contains no audio samples")
    # Both branches give a fresh contiguous array, so the clip does not pin the (n, channels) buffer.
    mono = data[:, 0].copy() if channels == 1 else data.mean(axis=1, dtype=np.float32)
    return AudioClip(samples=mono, sample_rate=sample_rate, channels=channels)


def write_wav(
    path: str | os.PathLike[str],
    samples: npt.NDArray[np.int16] | npt.NDArray[np.floating[Any]],
    sample_rate: int,
) -> None:
    """Write a PCM16 WAV, atomically, creating parent directories.

    ``samples`` are int16, or float clipped to [-1, 1]; shape (n,) for mono or (n, channels).
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if samples.ndim not in (1, 2) or (samples.ndim == 2 and samples.shape[1] == 0):
        raise ValueError(f"write_wav takes shape (n,) or (n, channels), got {samples.shape}")
    if samples.dtype == np.int16:
        pcm = samples
    elif np.issubdtype(samples.dtype, np.floating):
        pcm = float_to_pcm16(np.clip(samples, -1.0, 1.0))
    else:
        raise TypeError(f"write_wav takes int16 or float samples, got {samples.dtype}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A reader (or a crash) must never see half a file: write beside the target, then rename over it.
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w+b") as fh:
            # mkstemp makes the file owner-only; a recording should get ordinary permissions.
            os.fchmod(fh.fileno(), 0o644)
            try:
                sf.write(fh, pcm, sample_rate, format="WAV", subtype="PCM_16")
            except sf.SoundFileError as exc:
                raise AudioError(f"cannot write {target}: {_libsndfile_reason(exc)}") from exc
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, target)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def to_pipeline(clip: AudioClip) -> npt.NDArray[np.int16]:
    """The clip as the media layer's format: int16 mono at SAMPLE_RATE (16 kHz)."""
    return float_to_pcm16(resample(clip.samples, clip.sample_rate, SAMPLE_RATE))


def _libsndfile_reason(exc: Exception) -> str:
    # soundfile's message names the Python file object, not the path; keep only libsndfile's reason.
    return str(getattr(exc, "error_string", exc)).strip()
