from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voiceagent.media.echo import EchoGuard

FRAME = 320


def _speechlike(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Band-limited noise with a syllable-rate envelope: correlates like speech, costs nothing."""
    n = int(seconds * 16000)
    noise = np.convolve(rng.normal(0, 1, n), np.hanning(9), mode="same")
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * np.arange(n) / 16000) ** 2
    return noise / np.abs(noise).max() * envelope * 8000


def _run(guard: EchoGuard, reference: np.ndarray, inbound: np.ndarray):
    out, suspects = [], []
    for k in range(min(reference.size, inbound.size) // FRAME):
        guard.reference(reference[k * FRAME : (k + 1) * FRAME].astype(np.int16))
        out.append(guard.process(inbound[k * FRAME : (k + 1) * FRAME].astype(np.int16)))
        suspects.append(guard.echo_suspect)
    return np.concatenate(out).astype(float), suspects


@pytest.mark.parametrize(("delay_ms", "gain_db"), [(100, -6), (250, -20)])
def test_finds_the_delay_and_removes_the_echo(delay_ms: int, gain_db: float) -> None:
    rng = np.random.default_rng(1)
    ref = _speechlike(rng, 4.0)
    d = delay_ms * 16
    echo = np.zeros_like(ref)
    echo[d:] = ref[:-d] * 10 ** (gain_db / 20)
    guard = EchoGuard()
    residual, suspects = _run(guard, ref, echo + rng.normal(0, 3, ref.size))
    assert guard.delay_samples is not None
    assert abs(guard.delay_samples - d) <= 16
    late = slice(2 * 16000, None)
    erle_db = 10 * np.log10((echo[late] ** 2).sum() / (residual[late] ** 2).sum())
    assert erle_db > 20
    assert all(suspects[len(suspects) // 2 :])  # echo alone: every frame suspect once converged


def test_caller_over_the_echo_survives_and_is_not_suspect() -> None:
    rng = np.random.default_rng(2)
    ref = _speechlike(rng, 4.0)
    caller = _speechlike(np.random.default_rng(3), 4.0) * 0.5
    d = 150 * 16
    echo = np.zeros_like(ref)
    echo[d:] = ref[:-d] * 0.3
    inbound = echo.copy()
    talk = slice(3 * 16000, None)
    inbound[talk] += caller[talk]
    guard = EchoGuard()
    residual, suspects = _run(guard, ref, inbound)
    kept = np.corrcoef(residual[talk], caller[talk][: residual[talk].size])[0, 1]
    assert kept > 0.95
    assert not any(suspects[3 * 50 + 2 :])


def test_silent_agent_means_untouched_inbound() -> None:
    guard = EchoGuard()
    rng = np.random.default_rng(4)
    caller = _speechlike(rng, 1.0).astype(np.int16)
    out, suspects = _run(guard, np.zeros(caller.size), caller)
    assert np.array_equal(out.astype(np.int16), caller[: out.size])
    assert not any(suspects)


def test_no_echo_path_means_a_quiet_caller_is_not_suspect() -> None:
    # A browser cancels its own echo: nothing of the agent comes back, and a caller speaking
    # much more quietly than the agent must not be taken for echo once that is clear.
    rng = np.random.default_rng(5)
    ref = _speechlike(rng, 4.0)
    caller = _speechlike(np.random.default_rng(6), 4.0) * 0.2
    inbound = np.zeros_like(ref)
    inbound[3 * 16000 :] = caller[3 * 16000 :]
    guard = EchoGuard()
    _, suspects = _run(guard, ref, inbound)
    assert guard.delay_samples is None
    assert not any(suspects[3 * 50 :])


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "audio"


def _speech(name: str) -> np.ndarray:
    pcm, rate = sf.read(EXAMPLES / f"{name}.wav", dtype="int16")
    assert rate == 16000
    return pcm.astype(float)


# Pairs of real voices where a filter fitted while the caller talked over the agent used to
# correlate by chance (found in a headless-browser call, where there is no echo at all).
@pytest.mark.parametrize(
    ("agent", "caller"),
    [
        ("returns", "opening-hours"),
        ("order-status", "payment"),
        ("human", "shipping"),
        ("payment", "returns"),
    ],
)
def test_no_echo_path_never_puts_the_agent_on_the_callers_leg(agent: str, caller: str) -> None:
    reference = np.concatenate([_speech(agent)] * 3)
    voice = _speech(caller)
    inbound = np.zeros_like(reference)
    inbound[16000 : 16000 + voice.size] = voice[: reference.size - 16000]
    guard = EchoGuard()
    residual, suspects = _run(guard, reference, inbound)
    frames = residual.size // FRAME
    res = residual[: frames * FRAME].reshape(frames, FRAME)
    inb = inbound[: frames * FRAME].reshape(frames, FRAME)
    res_rms = np.sqrt((res**2).mean(axis=1))
    inb_rms = np.sqrt((inb**2).mean(axis=1))
    # Removing echo only removes energy: no frame may come out louder than it went in.
    assert (res_rms <= inb_rms + 1.0).all(), f"{(res_rms > inb_rms + 1.0).sum()} frames louder after"
    silent_after = (16000 + voice.size) // FRAME + 1
    assert res_rms[silent_after:].max() < 5.0  # the caller stopped: the leg stays silent
    talking = [i for i in range(16000 // FRAME, silent_after - 1) if inb_rms[i] > 500]
    # A filter fitted by chance on the caller's own voice can still flag a few scattered frames;
    # the caller must be heard through nearly all of them (barge-in counts voiced time).
    taken_for_echo = sum(suspects[i] for i in talking) / len(talking)
    assert taken_for_echo <= 0.1, f"{taken_for_echo:.0%} of the caller's frames taken for echo"


def test_a_line_without_echo_stays_cheap_on_later_answers_and_a_late_echo_is_still_found() -> None:
    rng = np.random.default_rng(7)
    silence = np.zeros(16000)  # the agent quiet for a second: its next answer starts afresh
    guard = EchoGuard()
    _run(guard, _speechlike(rng, 2.0), np.zeros(32000))  # no echo path at all
    first = guard.searches
    _run(guard, silence, silence)
    _run(guard, _speechlike(rng, 2.0), np.zeros(32000))
    second = guard.searches - first
    # The first answer's learning window searched every 5 frames; it found no echo path, so the
    # second answer (100 frames) is searched every 25 only.
    assert first >= 8
    assert second <= 100 // 25 + 1
    # The line starts echoing (100 ms, -6 dB): still found, within the answer.
    _run(guard, silence, silence)
    ref = _speechlike(rng, 2.0)
    echo = np.concatenate([np.zeros(1600), ref[:-1600]]) * 0.5
    _run(guard, ref, echo)
    assert guard.delay_samples is not None
    assert abs(guard.delay_samples - 1600) <= 4
