"""Framer and the sample conversions of voiceagent.audio.frames."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest

import voiceagent.audio
from voiceagent.audio import frames
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


def _ramp(n: int, start: int = 0) -> np.ndarray:
    return (np.arange(start, start + n) % 30000).astype(np.int16)


def test_frame_constants_agree() -> None:
    assert (SAMPLE_RATE, FRAME_MS, FRAME_SAMPLES) == (16000, 20, 320)
    assert SAMPLE_RATE * FRAME_MS // 1000 == FRAME_SAMPLES


@pytest.mark.parametrize("module", [voiceagent.audio, frames])
def test_all_is_sorted_and_complete(module: object) -> None:
    names = module.__all__  # type: ignore[attr-defined]
    assert names == sorted(names, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    for name in names:
        assert hasattr(module, name), name


def test_package_reexports_every_submodule_name() -> None:
    # importlib, because the package attribute ``resample`` is the function, not the module.
    modules = [
        importlib.import_module(f"voiceagent.audio.{n}")
        for n in ("frame_resample", "g711", "resample", "vad", "wav")
    ]
    expected = {n for m in [frames, *modules] for n in m.__all__}
    assert set(voiceagent.audio.__all__) == expected


def test_empty_push_returns_nothing_and_flush_is_none() -> None:
    framer = Framer()
    assert framer.push(np.zeros(0, dtype=np.int16)) == []
    assert framer.flush() is None


def test_exact_multiple_gives_whole_frames_and_no_remainder() -> None:
    framer = Framer()
    samples = _ramp(3 * FRAME_SAMPLES)
    out = framer.push(samples)
    assert len(out) == 3
    for i, frame in enumerate(out):
        assert frame.dtype == np.int16
        np.testing.assert_array_equal(frame, samples[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES])
    assert framer.flush() is None


def test_small_pushes_accumulate_across_calls() -> None:
    framer = Framer(frame_samples=10)
    samples = _ramp(37)
    out: list[np.ndarray] = []
    start = 0
    for size in (3, 4, 0, 1, 12, 9, 8):
        out.extend(framer.push(samples[start : start + size]))
        start += size
    assert [len(f) for f in out] == [10, 10, 10]
    np.testing.assert_array_equal(np.concatenate(out), samples[:30])
    tail = framer.flush()
    assert tail is not None
    np.testing.assert_array_equal(tail, np.concatenate([samples[30:], np.zeros(3, dtype=np.int16)]))


def test_remainder_then_flush_zero_pads_and_clears() -> None:
    framer = Framer()
    samples = _ramp(FRAME_SAMPLES + 7, start=1)
    assert len(framer.push(samples)) == 1
    tail = framer.flush()
    assert tail is not None
    assert tail.shape == (FRAME_SAMPLES,)
    np.testing.assert_array_equal(tail[:7], samples[-7:])
    assert not tail[7:].any()
    assert framer.flush() is None


def test_frames_are_independent_copies() -> None:
    framer = Framer(frame_samples=4)
    samples = _ramp(10, start=1)
    first = framer.push(samples[:6])  # one frame straight from the input, 2 kept
    second = framer.push(samples[6:])  # one frame assembled in the internal buffer
    samples[:] = 0
    np.testing.assert_array_equal(first[0], [1, 2, 3, 4])
    np.testing.assert_array_equal(second[0], [5, 6, 7, 8])
    second[0][:] = -1
    framer.push(np.array([9, 9, 9, 9], dtype=np.int16))  # reuses the internal buffer
    np.testing.assert_array_equal(second[0], [-1, -1, -1, -1])
    assert not np.shares_memory(first[0], samples)


def test_framer_refuses_float_and_bad_sizes() -> None:
    with pytest.raises(TypeError, match="int16"):
        Framer().push(np.zeros(320, dtype=np.float32))
    with pytest.raises(ValueError, match="1-D"):
        Framer().push(np.zeros((2, 320), dtype=np.int16))
    with pytest.raises(ValueError, match="positive"):
        Framer(frame_samples=0)


def test_pcm16_to_float_scale_and_range() -> None:
    out = pcm16_to_float(np.array([-32768, -16384, 0, 16384, 32767], dtype=np.int16))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [-1.0, -0.5, 0.0, 0.5, 32767 / 32768])


def test_float_to_pcm16_rounds_clips_and_zeroes_nan() -> None:
    values = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -3.0, 1.4 / 32768, 1.6 / 32768, np.nan])
    out = float_to_pcm16(values)
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, [0, 16384, -16384, 32767, -32768, 32767, -32768, 1, 2, 0])


def test_pcm16_float_round_trip_is_exact() -> None:
    every = np.arange(-32768, 32768, dtype=np.int16)
    np.testing.assert_array_equal(float_to_pcm16(pcm16_to_float(every)), every)


def test_float_to_pcm16_refuses_integers() -> None:
    with pytest.raises(TypeError, match="float"):
        float_to_pcm16(np.zeros(3, dtype=np.int16))


def test_silence() -> None:
    out = silence(FRAME_SAMPLES)
    assert out.dtype == np.int16
    assert out.shape == (FRAME_SAMPLES,)
    assert not out.any()
    assert silence(0).shape == (0,)
    with pytest.raises(ValueError, match="negative"):
        silence(-1)


def test_rms_dbfs_levels() -> None:
    t = np.arange(16000) / 16000
    sine = np.sin(2 * np.pi * 440 * t)
    assert rms_dbfs(sine) == pytest.approx(20 * math.log10(1 / math.sqrt(2)), abs=0.01)
    assert rms_dbfs((sine * 0.1).astype(np.float32)) == pytest.approx(-23.01, abs=0.01)
    assert rms_dbfs(float_to_pcm16(sine * 0.1)) == pytest.approx(-23.01, abs=0.01)
    assert rms_dbfs(np.full(100, 32767, dtype=np.int16)) == pytest.approx(0.0, abs=0.001)


def test_rms_dbfs_silence_is_floor_not_inf() -> None:
    assert rms_dbfs(silence(320)) == -120.0
    assert rms_dbfs(np.zeros(10, dtype=np.float32)) == -120.0
    assert rms_dbfs(np.zeros(0, dtype=np.int16)) == -120.0
    assert rms_dbfs(np.full(10, 1e-9)) == -120.0
