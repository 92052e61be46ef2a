"""The outbound queue, which counts exactly the samples handed to the bridge."""

from __future__ import annotations

from collections import defaultdict, deque

import numpy as np
import numpy.typing as npt

from voiceagent.audio import FRAME_SAMPLES, SAMPLE_RATE

__all__ = ["PlayoutQueue"]


class PlayoutQueue:
    """Agent audio waiting to be played, tagged by conversation item.

    ``pull`` hands out one frame at a time and counts, per item, the samples that were real agent
    audio. Those counts — never wall clock or generated length — are what truncation reports as
    ``audio_end_ms``. ``flush`` drops everything not yet handed out, at once.
    """

    def __init__(self, frame_samples: int = FRAME_SAMPLES, sample_rate: int = SAMPLE_RATE) -> None:
        self.frame_samples = frame_samples
        self.sample_rate = sample_rate
        self._chunks: deque[tuple[str, npt.NDArray[np.int16]]] = deque()
        self._offset = 0
        self._pending = 0
        self._played: defaultdict[str, int] = defaultdict(int)
        self.current_item: str | None = None
        self.paused = False

    def push(self, item_id: str, samples: npt.NDArray[np.int16]) -> None:
        if samples.size:
            self._chunks.append((item_id, samples))
            self._pending += samples.size

    def pull(self) -> npt.NDArray[np.int16]:
        """The next frame: queued audio, padded with silence when the queue runs dry or is paused."""
        frame = np.zeros(self.frame_samples, dtype=np.int16)
        if self.paused:
            self.current_item = None
            return frame
        filled = 0
        while filled < self.frame_samples and self._chunks:
            item_id, chunk = self._chunks[0]
            take = min(self.frame_samples - filled, chunk.size - self._offset)
            frame[filled : filled + take] = chunk[self._offset : self._offset + take]
            filled += take
            self._offset += take
            self._played[item_id] += take
            self.current_item = item_id
            if self._offset == chunk.size:
                self._chunks.popleft()
                self._offset = 0
        self._pending -= filled
        if not filled:
            self.current_item = None
        return frame

    def pause(self) -> None:
        """Play silence, keeping everything queued, until :meth:`resume`."""
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def flush(self) -> int:
        """Drop all queued audio and lift a pause; returns the number of samples dropped."""
        self.paused = False
        dropped = self._pending
        self._chunks.clear()
        self._offset = 0
        self._pending = 0
        self.current_item = None
        return dropped

    @property
    def pending_samples(self) -> int:
        return self._pending

    def played_samples(self, item_id: str) -> int:
        return self._played.get(item_id, 0)

    def played_ms(self, item_id: str) -> float:
        return 1000.0 * self.played_samples(item_id) / self.sample_rate
