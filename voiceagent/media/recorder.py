"""Both legs of a call, frame by frame, for the recording every call gets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from voiceagent.audio import SAMPLE_RATE, write_wav

__all__ = ["CallRecorder", "write_stereo"]


class CallRecorder:
    """Keeps inbound (caller) and outbound (agent) frames in step, one of each per tick."""

    def __init__(self, sample_rate: int = SAMPLE_RATE) -> None:
        self.sample_rate = sample_rate
        self._inbound: list[npt.NDArray[np.int16]] = []
        self._outbound: list[npt.NDArray[np.int16]] = []

    def inbound_frame(self, frame: npt.NDArray[np.int16]) -> None:
        self._inbound.append(frame.copy())

    def outbound_frame(self, frame: npt.NDArray[np.int16]) -> None:
        self._outbound.append(frame)

    def inbound(self) -> npt.NDArray[np.int16]:
        return _join(self._inbound)

    def outbound(self) -> npt.NDArray[np.int16]:
        return _join(self._outbound)

    def write_stereo(self, path: Path) -> None:
        write_stereo(path, self.inbound(), self.outbound(), self.sample_rate)


def write_stereo(
    path: Path, left: npt.NDArray[np.int16], right: npt.NDArray[np.int16], sample_rate: int
) -> None:
    """Caller on the left, agent on the right, padded to the same length."""
    n = max(left.size, right.size)
    stereo = np.zeros((n, 2), dtype=np.int16)
    stereo[: left.size, 0] = left
    stereo[: right.size, 1] = right
    write_wav(path, stereo, sample_rate)


def _join(frames: list[npt.NDArray[np.int16]]) -> npt.NDArray[np.int16]:
    return np.concatenate(frames) if frames else np.zeros(0, dtype=np.int16)
