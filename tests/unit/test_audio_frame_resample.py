import numpy as np
import pytest

from voiceagent.audio import FrameResampler, StreamResampler


def _tone(freq_hz: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq_hz * t) * 10000).astype(np.int16)


def _stream(r: FrameResampler, x: np.ndarray, frame: int) -> list[np.ndarray]:
    return [r.process(x[i : i + frame]) for i in range(0, x.size, frame)]


@pytest.mark.parametrize(
    ("src", "dst"), [(16000, 8000), (8000, 16000), (48000, 16000), (16000, 48000), (24000, 16000)]
)
def test_every_20ms_frame_comes_out_whole_and_on_time(src: int, dst: int) -> None:
    r = FrameResampler(src, dst)
    outs = _stream(r, _tone(1000, src), src // 50)
    assert {o.size for o in outs} == {dst // 50}
    y = np.concatenate(outs).astype(float)
    ref = np.sin(2 * np.pi * 1000 * (np.arange(y.size) - r.delay_samples) / dst) * 10000
    settled = slice(dst // 10, None)
    assert np.sqrt(np.mean((y[settled] - ref[settled]) ** 2)) < 5  # of 7071 rms
    assert r.delay_samples / dst < 0.003


def test_downsampling_rejects_what_would_alias() -> None:
    r = FrameResampler(16000, 8000)
    y = np.concatenate(_stream(r, _tone(6000, 16000), 320)).astype(float)
    passed = np.sqrt(np.mean(y[800:] ** 2))
    assert 20 * np.log10(max(passed, 1e-9) / 7071) < -50


def test_float_and_int_types_are_kept_and_ratio_checked() -> None:
    assert FrameResampler(8000, 16000).process(np.zeros(160, np.float32)).dtype == np.float32
    assert FrameResampler(8000, 16000).process(np.zeros(160, np.int16)).dtype == np.int16
    assert FrameResampler(16000, 16000).passthrough
    with pytest.raises(ValueError, match="telephony ratio"):
        FrameResampler(44100, 16000)


def test_soxr_stream_is_block_latent_which_is_why_frames_use_the_fir() -> None:
    # Documents the finding behind FrameResampler: soxr's stream returns nothing for whole frames.
    s = StreamResampler(16000, 8000, dtype=np.int16)
    sizes = [s.process(np.ones(320, np.int16)).size for _ in range(5)]
    assert 0 in sizes
