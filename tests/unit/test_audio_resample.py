"""StreamResampler and resample: frequency, level, streaming equivalence, dtype, passthrough."""

from __future__ import annotations

import numpy as np
import pytest

from voiceagent.audio.frames import float_to_pcm16
from voiceagent.audio.resample import StreamResampler, resample

CHUNK_SIZES = (1, 7, 333, 160, 1000, 17, 320)


def _sine(freq_hz: float, sample_rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def _peak_hz(samples: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / sample_rate)[np.argmax(spectrum)])


def _stream(resampler: StreamResampler, samples: np.ndarray) -> np.ndarray:
    outs, start, i = [], 0, 0
    while start < len(samples):
        size = CHUNK_SIZES[i % len(CHUNK_SIZES)]
        outs.append(resampler.process(samples[start : start + size]))
        start += size
        i += 1
    outs.append(resampler.flush())
    return np.concatenate(outs)


def test_sine_down_and_up_keeps_frequency_and_amplitude() -> None:
    tone = _sine(1000, 16000, 1.0)
    down = resample(tone, 16000, 8000)
    assert len(down) == 8000
    assert _peak_hz(down, 8000) == pytest.approx(1000, abs=2)
    back = resample(down, 8000, 16000)
    assert len(back) == len(tone)
    assert _peak_hz(back, 16000) == pytest.approx(1000, abs=2)
    middle = slice(800, -800)  # away from the filter's edge effects
    assert np.max(np.abs(back[middle])) == pytest.approx(0.5, rel=0.01)
    np.testing.assert_allclose(back[middle], tone[middle], atol=0.01)


def test_content_above_new_nyquist_is_removed() -> None:
    tone = _sine(5000, 16000, 0.5)  # above 4 kHz, so it must not alias into the 8 kHz output
    down = resample(tone, 16000, 8000)
    assert np.sqrt(np.mean(down[400:-400] ** 2)) < 0.005


@pytest.mark.parametrize(
    ("in_rate", "out_rate"), [(16000, 8000), (8000, 16000), (24000, 16000), (16000, 48000), (44100, 16000)]
)
def test_streaming_matches_one_shot(in_rate: int, out_rate: int) -> None:
    rng = np.random.default_rng(in_rate + out_rate)
    signal = (_sine(1000, in_rate, 1.3) + 0.1 * rng.standard_normal(int(in_rate * 1.3))).astype(np.float32)
    streamed = _stream(StreamResampler(in_rate, out_rate), signal)
    one_shot = resample(signal, in_rate, out_rate)
    expected_len = len(signal) * out_rate / in_rate
    assert abs(len(streamed) - expected_len) <= 3
    n = min(len(streamed), len(one_shot))
    assert n >= expected_len - 3
    np.testing.assert_allclose(streamed[:n], one_shot[:n], atol=1e-4)


def test_streaming_int16_matches_one_shot_and_stays_int16() -> None:
    signal = float_to_pcm16(_sine(440, 8000, 1.0))
    resampler = StreamResampler(8000, 16000)
    streamed = _stream(resampler, signal)
    assert streamed.dtype == np.int16
    one_shot = resample(signal, 8000, 16000)
    assert one_shot.dtype == np.int16
    assert abs(len(streamed) - 16000) <= 3
    n = min(len(streamed), len(one_shot))
    # soxr dithers int16 output (±1 LSB each), so the two may differ by a couple of LSB.
    assert np.max(np.abs(streamed[:n].astype(np.int32) - one_shot[:n])) <= 3


def test_flush_readies_the_resampler_for_a_new_stream() -> None:
    signal = _sine(300, 16000, 0.5)
    resampler = StreamResampler(16000, 8000)
    first = _stream(resampler, signal)
    second = _stream(resampler, signal)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64, np.int32])
def test_dtype_is_preserved(dtype: type) -> None:
    scale = 30000 if np.issubdtype(dtype, np.integer) else 1
    signal: np.ndarray = (_sine(440, 16000, 0.1) * scale).astype(dtype)
    assert resample(signal, 16000, 8000).dtype == dtype
    resampler = StreamResampler(16000, 8000)
    assert resampler.process(signal).dtype == dtype
    assert resampler.flush().dtype == dtype


def test_one_instance_handles_one_dtype() -> None:
    resampler = StreamResampler(16000, 8000)
    resampler.process(np.zeros(160, dtype=np.int16))
    with pytest.raises(TypeError, match="int16"):
        resampler.process(np.zeros(160, dtype=np.float32))
    explicit = StreamResampler(16000, 8000, dtype=np.float32)
    with pytest.raises(TypeError, match="float32"):
        explicit.process(np.zeros(160, dtype=np.int16))
    assert explicit.flush().dtype == np.float32


def test_flush_before_any_chunk_is_empty() -> None:
    out = StreamResampler(16000, 8000).flush()
    assert out.shape == (0,)
    assert out.dtype == np.float32


def test_passthrough_copies() -> None:
    signal = float_to_pcm16(_sine(440, 16000, 0.1))
    resampler = StreamResampler(16000, 16000)
    assert resampler.passthrough
    out = resampler.process(signal)
    np.testing.assert_array_equal(out, signal)
    assert not np.shares_memory(out, signal)
    assert resampler.flush().shape == (0,)
    one_shot = resample(signal, 16000, 16000)
    np.testing.assert_array_equal(one_shot, signal)
    assert not np.shares_memory(one_shot, signal)


@pytest.mark.parametrize(("in_rate", "out_rate"), [(0, 16000), (16000, 0), (-8000, 16000)])
def test_rates_must_be_positive(in_rate: int, out_rate: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        StreamResampler(in_rate, out_rate)
    with pytest.raises(ValueError, match="positive"):
        resample(np.zeros(10, dtype=np.float32), in_rate, out_rate)


def test_refuses_bad_quality_shape_and_dtype() -> None:
    with pytest.raises(ValueError, match="quality"):
        StreamResampler(16000, 8000, quality="best")
    with pytest.raises(ValueError, match="1-D"):
        StreamResampler(16000, 8000).process(np.zeros((10, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="1-D"):
        resample(np.zeros((10, 2), dtype=np.float32), 16000, 8000)
    with pytest.raises(TypeError, match="uint8"):
        resample(np.zeros(10, dtype=np.uint8), 16000, 8000)
    with pytest.raises(TypeError, match="uint8"):
        StreamResampler(16000, 8000, dtype=np.uint8)
