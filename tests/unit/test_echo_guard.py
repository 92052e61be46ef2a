import numpy as np
import pytest

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
