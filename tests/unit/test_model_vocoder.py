import math

import pytest

torch = pytest.importorskip("torch")

from voiceagent.model.config import preset  # noqa: E402
from voiceagent.model.frontend import LogMelFrontend  # noqa: E402
from voiceagent.model.vocoder import GriffinLimVocoder, Vocoder  # noqa: E402

CONFIG = preset("tiny")


def test_griffin_lim_is_a_vocoder_and_returns_hop_samples_per_frame() -> None:
    vocoder = GriffinLimVocoder(CONFIG, n_iter=4)
    assert isinstance(vocoder, Vocoder)
    assert vocoder.sample_rate == 16_000
    audio = vocoder(torch.randn(2, 37, CONFIG.n_mels) - 5.0)
    assert audio.shape == (2, 37 * CONFIG.hop_length)
    assert audio.abs().max() <= 1.0


@pytest.mark.parametrize("tone_hz", [440.0, 1_000.0, 2_500.0])
def test_tone_round_trips_through_mel(tone_hz: float) -> None:
    t = torch.arange(16_000) / 16_000
    tone = 0.5 * torch.sin(2 * math.pi * tone_hz * t)[None]
    audio = GriffinLimVocoder(CONFIG, n_iter=16)(LogMelFrontend(CONFIG)(tone))
    spectrum = torch.fft.rfft(audio[0]).abs()
    peak_hz = spectrum.argmax().item() * CONFIG.sample_rate / audio.shape[1]
    # A mel band is ~70 Hz wide at 1 kHz and ~250 Hz at 2.5 kHz: the peak lands within its band.
    assert abs(peak_hz - tone_hz) <= 0.08 * tone_hz
