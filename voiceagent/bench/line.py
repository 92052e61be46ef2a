"""A simulated phone line for benchmarks: echo of what was played, hiss, and G.711 at 8 kHz."""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt

from voiceagent.audio import FRAME_SAMPLES, FrameResampler, ulaw_decode, ulaw_encode

__all__ = ["PhoneLine"]


class PhoneLine:
    """What reaches the media layer from a caller on a telephone line.

    The agent's audio comes back as echo ``echo_delay_ms`` later at ``echo_gain_db``; hiss of
    ``noise_dbfs`` (RMS) is added; the sum goes through 8 kHz G.711 µ-law, as on a PSTN trunk. Use
    an instance as the ``line`` of :func:`voiceagent.bridges.file.run_file_call`.
    """

    def __init__(
        self,
        *,
        echo_delay_ms: float,
        echo_gain_db: float,
        noise_dbfs: float | None,
        seed: int = 0,
        g711: bool = True,
    ) -> None:
        delay = int(echo_delay_ms * 16)
        self._echo: deque[float] = deque([0.0] * delay, maxlen=delay + FRAME_SAMPLES)
        self._gain = 10 ** (echo_gain_db / 20)
        self._noise_rms = None if noise_dbfs is None else 32768 * 10 ** (noise_dbfs / 20)
        self._rng = np.random.default_rng(seed)
        self._g711 = g711
        self._down = FrameResampler(16000, 8000)
        self._up = FrameResampler(8000, 16000)

    def __call__(
        self, caller: npt.NDArray[np.int16], outbound: npt.NDArray[np.int16]
    ) -> npt.NDArray[np.int16]:
        self._echo.extend(outbound.astype(np.float64))
        echo = np.array([self._echo.popleft() for _ in range(FRAME_SAMPLES)])
        mix = caller.astype(np.float64) + self._gain * echo
        if self._noise_rms is not None:
            mix += self._rng.normal(0.0, self._noise_rms, FRAME_SAMPLES)
        pcm = np.clip(np.round(mix), -32768, 32767).astype(np.int16)
        if not self._g711:
            return pcm
        narrow = ulaw_decode(ulaw_encode(self._down.process(pcm)))
        result: npt.NDArray[np.int16] = self._up.process(narrow)
        return result
