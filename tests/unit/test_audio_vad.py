"""SileroVad on the packaged Silero v5 model, with speech synthesised by the packaged hibari TTS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voiceagent.audio.frames import FRAME_SAMPLES, float_to_pcm16, pcm16_to_float
from voiceagent.audio.resample import resample
from voiceagent.audio.vad import SileroVad
from voiceagent.errors import ModelError, ModelNotFoundError
from voiceagent.packaged_models import resolve

SENTENCE = "Hello, I would like to know your opening hours please."
TTS_RATE = 24000


@pytest.fixture(scope="module")
def speech_24k() -> np.ndarray:
    from hibari import Hibari

    audio = np.asarray(Hibari()(SENTENCE, seed=1), dtype=np.float32)
    assert audio.ndim == 1
    assert len(audio) > TTS_RATE  # over a second of speech
    return audio


@pytest.fixture(scope="module")
def speech_16k(speech_24k: np.ndarray) -> np.ndarray:
    return float_to_pcm16(resample(speech_24k, TTS_RATE, 16000))


@pytest.fixture(scope="module")
def speech_8k(speech_24k: np.ndarray) -> np.ndarray:
    return float_to_pcm16(resample(speech_24k, TTS_RATE, 8000))


def _in_frames(vad: SileroVad, samples: np.ndarray, frame_samples: int = FRAME_SAMPLES) -> list[float]:
    out: list[float] = []
    for start in range(0, len(samples), frame_samples):
        out.extend(vad.process(samples[start : start + frame_samples]))
    return out


@pytest.mark.parametrize(("sample_rate", "window_samples"), [(16000, 512), (8000, 256)])
def test_window_size(sample_rate: int, window_samples: int) -> None:
    vad = SileroVad.packaged(sample_rate)
    assert vad.window_samples == window_samples
    assert vad.window_ms == 32.0


def test_one_probability_per_completed_window() -> None:
    vad = SileroVad.packaged()
    fed = 0
    for _ in range(40):
        got = vad.process(np.zeros(FRAME_SAMPLES, dtype=np.int16))
        assert len(got) == (fed + FRAME_SAMPLES) // 512 - fed // 512  # a 20 ms frame gives 0 or 1
        fed += FRAME_SAMPLES
    assert len(vad.process(np.zeros(0, dtype=np.int16))) == 0
    vad.reset()
    assert len(vad.process(np.zeros(5000, dtype=np.int16))) == 5000 // 512
    assert len(vad.process(np.zeros(5 * 512 - 5000 % 512, dtype=np.int16))) == 5


def test_digital_silence_is_not_speech() -> None:
    probabilities = SileroVad.packaged().process(np.zeros(32000, dtype=np.int16))
    assert len(probabilities) == 62
    assert max(probabilities) < 0.1


def test_quiet_white_noise_is_mostly_not_speech() -> None:
    noise = float_to_pcm16(np.random.default_rng(3).standard_normal(48000) * 0.01)
    probabilities = np.array(SileroVad.packaged().process(noise))
    assert np.mean(probabilities < 0.5) >= 0.9


def test_speech_is_detected(speech_16k: np.ndarray) -> None:
    probabilities = np.array(_in_frames(SileroVad.packaged(), speech_16k))
    assert np.mean(probabilities > 0.5) >= 0.5
    # The TTS output starts and ends with a little silence: the detector should see the edges.
    assert probabilities[0] < 0.5
    assert probabilities[-1] < 0.5


def _reference(samples: np.ndarray, sample_rate: int) -> list[float]:
    """The protocol of Silero's own v5 wrapper, written out plainly: context + window, state carried."""
    import onnxruntime as ort

    window, context_samples = {16000: (512, 64), 8000: (256, 32)}[sample_rate]
    session = ort.InferenceSession(str(resolve("silero-vad", "vad").path), providers=["CPUExecutionProvider"])
    state = np.zeros((2, 1, 128), dtype=np.float32)
    context = np.zeros(context_samples, dtype=np.float32)
    out: list[float] = []
    audio = pcm16_to_float(samples)
    for start in range(0, len(audio) - window + 1, window):
        x = np.concatenate([context, audio[start : start + window]])[np.newaxis, :]
        probability, state = session.run(
            None, {"input": x, "state": state, "sr": np.array(sample_rate, dtype=np.int64)}
        )
        context = x[0, -context_samples:]
        out.append(float(probability[0, 0]))
    return out


@pytest.mark.parametrize("sample_rate", [16000, 8000])
def test_matches_the_reference_protocol(
    sample_rate: int, speech_16k: np.ndarray, speech_8k: np.ndarray
) -> None:
    speech = speech_16k if sample_rate == 16000 else speech_8k
    vad = SileroVad.packaged(sample_rate, silence_dbfs=None)  # the model alone, every window
    got = _in_frames(vad, speech, frame_samples=sample_rate // 50)
    np.testing.assert_allclose(got, _reference(speech, sample_rate), rtol=0, atol=1e-5)


def test_frames_and_whole_signal_give_the_same_probabilities(speech_16k: np.ndarray) -> None:
    whole = SileroVad.packaged().process(speech_16k)
    framed = _in_frames(SileroVad.packaged(), speech_16k)
    odd = _in_frames(SileroVad.packaged(), speech_16k, frame_samples=77)
    assert len(whole) == len(framed) == len(odd) == len(speech_16k) // 512
    np.testing.assert_allclose(framed, whole, rtol=0, atol=1e-6)
    np.testing.assert_allclose(odd, whole, rtol=0, atol=1e-6)


def test_float_input_matches_int16(speech_16k: np.ndarray) -> None:
    from_int = SileroVad.packaged().process(speech_16k)
    from_float = SileroVad.packaged().process(pcm16_to_float(speech_16k))
    np.testing.assert_allclose(from_float, from_int, rtol=0, atol=1e-6)


def test_reset_makes_a_second_run_identical(speech_16k: np.ndarray) -> None:
    vad = SileroVad.packaged()
    first = _in_frames(vad, speech_16k)
    # Leave loud speech in the context and a partial window, which reset must drop too.
    middle = len(speech_16k) // 2
    vad.process(speech_16k[middle : middle + 3 * 512 + 100])
    vad.reset()
    second = _in_frames(vad, speech_16k)
    np.testing.assert_allclose(second, first, rtol=0, atol=1e-6)


def test_without_reset_state_carries_over(speech_16k: np.ndarray) -> None:
    # Guards the test above: a run straight after speech must differ, or reset proves nothing.
    vad = SileroVad.packaged()
    opening = speech_16k[: 512 * 20]
    first = vad.process(opening)
    vad.process(speech_16k[len(speech_16k) // 2 :][: 512 * 10])
    second = vad.process(opening)
    assert np.max(np.abs(np.array(first) - np.array(second))) > 1e-4


def test_instances_keep_separate_state(speech_16k: np.ndarray) -> None:
    noise = float_to_pcm16(np.random.default_rng(5).standard_normal(len(speech_16k)) * 0.01)
    alone_speech = _in_frames(SileroVad.packaged(), speech_16k)
    alone_noise = _in_frames(SileroVad.packaged(), noise)
    a, b = SileroVad.packaged(), SileroVad.packaged()
    mixed_speech: list[float] = []
    mixed_noise: list[float] = []
    for start in range(0, len(speech_16k), FRAME_SAMPLES):
        mixed_speech.extend(a.process(speech_16k[start : start + FRAME_SAMPLES]))
        mixed_noise.extend(b.process(noise[start : start + FRAME_SAMPLES]))
    np.testing.assert_allclose(mixed_speech, alone_speech, rtol=0, atol=1e-6)
    np.testing.assert_allclose(mixed_noise, alone_noise, rtol=0, atol=1e-6)


def _with_pauses(speech: np.ndarray) -> np.ndarray:
    """Speech, a second of digital silence, the speech again, then line-level hiss and silence."""
    pause = np.zeros(16000, dtype=np.int16)
    hiss = float_to_pcm16(np.random.default_rng(7).standard_normal(8000) * 0.003)  # about -50 dBFS
    return np.concatenate([speech, pause, speech, hiss, pause])


def test_silence_gate_keeps_the_models_decisions(speech_16k: np.ndarray) -> None:
    signal = _with_pauses(speech_16k)
    model = np.array(_in_frames(SileroVad.packaged(silence_dbfs=None), signal))
    vad = SileroVad.packaged()
    gated = np.array(_in_frames(vad, signal))
    assert len(gated) == len(model)
    assert vad.skipped_windows >= 40  # most of two seconds of digital silence
    # The speech decisions are the model's (at most one window in a hundred differs).
    assert np.mean((gated > 0.5) != (model > 0.5)) <= 0.01


def test_silence_gate_skips_only_quiet_windows_after_the_model_settled(speech_16k: np.ndarray) -> None:
    signal = _with_pauses(speech_16k)
    vad = SileroVad.packaged()
    previous = 1.0
    skipped = 0
    for i in range(len(signal) // 512):
        window = signal[i * 512 : (i + 1) * 512]
        before = vad.skipped_windows
        (probability,) = vad.process(window)
        if vad.skipped_windows > before:
            skipped += 1
            rms_dbfs = 10 * np.log10(np.mean((window / 32768.0) ** 2) + 1e-12)
            assert rms_dbfs < -60.0, f"window {i} at {rms_dbfs:.1f} dBFS was skipped"
            assert previous < 0.05, f"window {i} was skipped during the model's hangover ({previous:.2f})"
            assert probability == previous
        previous = probability
    assert skipped == vad.skipped_windows > 0


def test_silence_gate_off_runs_every_window() -> None:
    vad = SileroVad.packaged(silence_dbfs=None)
    vad.process(np.zeros(16000, dtype=np.int16))
    assert vad.skipped_windows == 0
    gated = SileroVad.packaged()
    gated.process(np.zeros(16000, dtype=np.int16))
    assert gated.skipped_windows == 16000 // 512 - 1  # the first window runs: a new stream has no history


def test_8k_mode_on_8k_speech(speech_8k: np.ndarray) -> None:
    vad = SileroVad.packaged(8000)
    probabilities = np.array(_in_frames(vad, speech_8k, frame_samples=160))
    assert len(probabilities) == len(speech_8k) // 256
    assert np.mean(probabilities > 0.5) >= 0.5
    vad.reset()
    assert max(vad.process(np.zeros(16000, dtype=np.int16))) < 0.1


@pytest.mark.parametrize("sample_rate", [22050, 48000, 0])
def test_refuses_other_sample_rates(sample_rate: int) -> None:
    with pytest.raises(ValueError, match="8000 or 16000"):
        SileroVad.packaged(sample_rate)


def test_refuses_bad_input() -> None:
    vad = SileroVad.packaged()
    with pytest.raises(TypeError, match="float64"):
        vad.process(np.zeros(512, dtype=np.float64))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1-D"):
        vad.process(np.zeros((2, 512), dtype=np.int16))
    with pytest.raises(ValueError, match="threads"):
        SileroVad(resolve("silero-vad", "vad").path, threads=0)


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not found"):
        SileroVad(tmp_path / "silero_vad.onnx")


def test_unloadable_model_file_is_a_model_error(tmp_path: Path) -> None:
    bogus = tmp_path / "silero_vad.onnx"
    bogus.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load Silero VAD model") as info:
        SileroVad(bogus)
    assert str(bogus) in str(info.value)
    assert info.value.__cause__ is not None


def test_another_onnx_model_is_refused() -> None:
    tts_model = resolve("hibari-heart", "tts").path
    with pytest.raises(ModelError, match="not a Silero VAD v5 model"):
        SileroVad(tts_model)


def test_feed_and_collect_give_what_process_gives(speech_16k: np.ndarray) -> None:
    whole = SileroVad.packaged().process(speech_16k)
    vad = SileroVad.packaged()
    split: list[float] = []
    for start in range(0, len(speech_16k), FRAME_SAMPLES):
        vad.feed(speech_16k[start : start + FRAME_SAMPLES])
        split.extend(vad.collect())
    # 20 ms frames end mid-window: the samples past a window's end wait for it to be scored.
    assert split == pytest.approx(whole, abs=1e-6)
    assert vad.collect() == []  # nothing completed since


def test_feeding_twice_without_collect_scores_the_first_window(speech_16k: np.ndarray) -> None:
    reference = SileroVad.packaged().process(speech_16k[:1024])
    vad = SileroVad.packaged()
    vad.feed(speech_16k[:512])
    assert vad.needs_model
    vad.feed(speech_16k[512:1024])  # the first window's probability is dropped, its state kept
    assert vad.collect() == pytest.approx(reference[1:], abs=1e-6)
    with pytest.raises(ValueError, match="at most 512"):
        vad.feed(speech_16k[:513])


def test_batched_scoring_matches_one_stream_at_a_time(speech_16k: np.ndarray) -> None:
    from voiceagent.audio import score_windows

    # Three calls at different points of the sentence, one of them silent for a while.
    streams = [speech_16k, np.roll(speech_16k, 7000), np.concatenate([np.zeros(8000, np.int16), speech_16k])]
    n = min(len(s) for s in streams)
    alone = [SileroVad.packaged().process(s[:n]) for s in streams]
    vads = [SileroVad.packaged() for _ in streams]
    batched: list[list[float]] = [[] for _ in streams]
    in_batches = 0
    for start in range(0, n, FRAME_SAMPLES):
        for vad, s in zip(vads, streams, strict=True):
            vad.feed(s[start : start + FRAME_SAMPLES])
        in_batches += score_windows(vads)
        for out, vad in zip(batched, vads, strict=True):
            out.extend(vad.collect())
    for got, want in zip(batched, alone, strict=True):
        assert got == pytest.approx(want, abs=1e-4)
    assert in_batches > len(alone[0])  # most windows went through the batch
    assert vads[2].skipped_windows > 0  # the gated silence never entered one
