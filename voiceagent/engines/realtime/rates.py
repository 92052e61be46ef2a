"""PCM rates on the wire vs in the media layer: streaming conversion both ways, filter state kept.

Our workers take the media layer's 16 kHz; some Realtime servers take only 24 kHz. Each direction
keeps one soxr stream for the whole call, so chunk boundaries leave no seams; the filter's last few
milliseconds are flushed at the end of each caller turn and of each reply.
"""

from __future__ import annotations

import numpy as np

from voiceagent.audio import StreamResampler

__all__ = ["WireRates"]


class WireRates:
    """Converts caller audio to the wire rate and reply audio back to the media layer's rate."""

    def __init__(self, media_in_rate: int, media_out_rate: int, wire_rate: int | None = None) -> None:
        self.wire_in_rate = wire_rate or media_in_rate
        self.wire_out_rate = wire_rate or media_out_rate
        self._up = StreamResampler(media_in_rate, self.wire_in_rate, dtype=np.int16)
        self._down = StreamResampler(self.wire_out_rate, media_out_rate, dtype=np.int16)

    def to_wire(self, audio: bytes) -> bytes:
        """Caller audio at the wire rate (may be shorter than its share until the turn ends)."""
        return audio if self._up.passthrough else self._convert(self._up, audio)

    def end_of_input(self) -> bytes:
        """What is left of the caller's turn inside the filter."""
        return b"" if self._up.passthrough else self._up.flush().astype("<i2").tobytes()

    def from_wire(self, audio: bytes) -> bytes:
        """Reply audio at the media layer's rate."""
        return audio if self._down.passthrough else self._convert(self._down, audio)

    def end_of_output(self) -> bytes:
        """What is left of a reply inside the filter."""
        return b"" if self._down.passthrough else self._down.flush().astype("<i2").tobytes()

    @staticmethod
    def _convert(stream: StreamResampler, audio: bytes) -> bytes:
        out = stream.process(np.frombuffer(audio, dtype="<i2").astype(np.int16))
        return out.astype("<i2").tobytes()
