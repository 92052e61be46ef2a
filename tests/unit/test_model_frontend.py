import numpy as np
import pytest

torch = pytest.importorskip("torch")

from voiceagent.model.config import preset  # noqa: E402
from voiceagent.model.frontend import LogMelFrontend, hz_to_mel, mel_filterbank, mel_to_hz  # noqa: E402


def _np_hz_to_mel(hz: np.ndarray) -> np.ndarray:
    # Slaney: 3 mels per 200 Hz up to 1 kHz, then 27 mels per factor 6.4.
    hz = np.asarray(hz, dtype=np.float64)
    mel = 3.0 * hz / 200.0
    above = hz >= 1000.0
    mel[above] = 15.0 + 27.0 * np.log(hz[above] / 1000.0) / np.log(6.4)
    return mel


def _np_mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    hz = 200.0 * mel / 3.0
    above = mel >= 15.0
    hz[above] = 1000.0 * np.exp(np.log(6.4) * (mel[above] - 15.0) / 27.0)
    return hz


def _np_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    bins_hz = np.arange(n_fft // 2 + 1) * sr / n_fft
    edges = _np_mel_to_hz(
        np.linspace(_np_hz_to_mel(np.array([fmin]))[0], _np_hz_to_mel(np.array([fmax]))[0], n_mels + 2)
    )
    fb = np.zeros((n_mels, bins_hz.size))
    for m in range(n_mels):
        left, centre, right = edges[m], edges[m + 1], edges[m + 2]
        rising = (bins_hz - left) / (centre - left)
        falling = (right - bins_hz) / (right - centre)
        fb[m] = np.maximum(0.0, np.minimum(rising, falling)) * 2.0 / (right - left)
    return fb


def _np_log_mel(audio: np.ndarray, sr: int, n_fft: int, hop: int, n_mels: int) -> np.ndarray:
    padded = np.concatenate([np.zeros(n_fft - hop), audio.astype(np.float64)])
    n_frames = (padded.size - n_fft) // hop + 1
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    frames = np.stack([padded[i * hop : i * hop + n_fft] * window for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
    mel = power @ _np_filterbank(sr, n_fft, n_mels, 0.0, sr / 2).T
    return np.log(np.maximum(mel, 1e-10))


def test_slaney_scale_break_point_and_inverse() -> None:
    hz = torch.tensor([0.0, 200.0, 1000.0, 4000.0, 8000.0], dtype=torch.float64)
    mel = hz_to_mel(hz)
    assert mel[2].item() == pytest.approx(15.0)
    assert mel[1].item() == pytest.approx(3.0)
    torch.testing.assert_close(mel_to_hz(mel), hz)


def test_filterbank_matches_numpy_reference() -> None:
    fb = mel_filterbank(16_000, 400, 80, 0.0, 8_000.0)
    assert fb.shape == (80, 201)
    np.testing.assert_allclose(
        fb.numpy(), _np_filterbank(16_000, 400, 80, 0.0, 8_000.0), rtol=1e-5, atol=1e-9
    )


def test_log_mel_matches_numpy_reference() -> None:
    config = preset("tiny")
    rng = np.random.default_rng(0)
    t = np.arange(8_000) / 16_000
    audio = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
    got = LogMelFrontend(config)(torch.tensor(audio, dtype=torch.float32)[None])[0].numpy()
    want = _np_log_mel(audio, 16_000, config.n_fft, config.hop_length, config.n_mels)
    assert got.shape == want.shape == (50, 80)
    np.testing.assert_allclose(got, want, atol=2e-3)


def test_streaming_equals_whole_utterance() -> None:
    frontend = LogMelFrontend(preset("tiny"))
    audio = torch.randn(2, 5_003) * 0.1
    whole = frontend(audio)
    state = frontend.init_state(2)
    parts = []
    for start, size in zip([0, 7, 7 + 320, 7 + 320 + 1_000], [7, 320, 1_000, 10_000], strict=True):
        mel, state = frontend.stream(audio[:, start : start + size], state)
        parts.append(mel)
    assert whole.shape == (2, 5_003 // 160, 80)
    torch.testing.assert_close(torch.cat(parts, dim=1), whole, rtol=0, atol=1e-5)
