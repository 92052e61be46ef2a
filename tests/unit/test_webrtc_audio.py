"""The WebRTC edge's audio conversions and its 20 ms clock, without a peer or a browser."""

import asyncio
import fractions
import time

import av
import numpy as np
import numpy.typing as npt
import pytest

from voiceagent.audio import FRAME_SAMPLES
from voiceagent.bridges.webrtc import AgentAudioTrack, FramePacer, InboundAudio, OutboundAudio, downmix
from voiceagent.bridges.webrtc.audio import WIRE_RATE, WIRE_SAMPLES


def tone(freq_hz: float, rate: int, samples: int, amplitude: float = 8000.0) -> npt.NDArray[np.int16]:
    return (np.sin(2 * np.pi * freq_hz * np.arange(samples) / rate) * amplitude).astype(np.int16)


def wire_frame(
    mono: npt.NDArray[np.int16], *, layout: str = "stereo", rate: int = WIRE_RATE
) -> av.AudioFrame:
    """A frame as aiortc's Opus decoder hands it over: packed s16, channels interleaved."""
    channels = 2 if layout == "stereo" else 1
    data = np.repeat(mono, channels).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(data, format="s16", layout=layout)
    frame.sample_rate = rate
    return frame


def dominant_hz(pcm: npt.NDArray[np.int16], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(pcm.size)))
    return float(np.fft.rfftfreq(pcm.size, 1 / rate)[int(np.argmax(spectrum))])


# ---- downmix ------------------------------------------------------------------------------------


def test_downmix_averages_interleaved_stereo() -> None:
    left = np.array([1000, -2000, 300], dtype=np.int16)
    right = np.array([3000, 2000, -301], dtype=np.int16)
    data = np.stack([left, right], axis=1).reshape(1, -1)  # L R L R ...
    frame = av.AudioFrame.from_ndarray(data, format="s16", layout="stereo")
    assert downmix(frame).tolist() == [2000, 0, 0]


def test_downmix_handles_planar_float() -> None:
    data = np.array([[0.5, -0.25], [0.5, 0.25]], dtype=np.float32)  # (channels, n)
    frame = av.AudioFrame.from_ndarray(data, format="fltp", layout="stereo")
    assert downmix(frame).tolist() == [16384, 0]


def test_downmix_of_mono_s16_is_a_copy() -> None:
    mono = tone(440, WIRE_RATE, WIRE_SAMPLES)
    frame = wire_frame(mono, layout="mono")
    out = downmix(frame)
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, mono)


# ---- inbound ------------------------------------------------------------------------------------


def test_inbound_turns_48k_stereo_frames_into_320_sample_16k_frames() -> None:
    wire = tone(1000, WIRE_RATE, WIRE_SAMPLES * 50)
    inbound = InboundAudio()
    frames = []
    for start in range(0, wire.size, WIRE_SAMPLES):
        out = inbound.push(wire_frame(wire[start : start + WIRE_SAMPLES]))
        assert len(out) == 1  # each 20 ms in gives 20 ms out, at once: no block latency
        frames += out
    assert all(f.shape == (FRAME_SAMPLES,) and f.dtype == np.int16 for f in frames)
    pcm = np.concatenate(frames)
    assert dominant_hz(pcm[1600:], 16000) == pytest.approx(1000, abs=10)
    # Level survives: the filter's pass band is flat at 1 kHz.
    assert np.abs(pcm[1600:]).max() == pytest.approx(8000, rel=0.05)


def test_inbound_reframes_odd_sized_frames() -> None:
    wire = tone(500, WIRE_RATE, WIRE_SAMPLES * 10)
    inbound = InboundAudio()
    frames = []
    for start in range(0, wire.size, 480):  # 10 ms frames
        frames += inbound.push(wire_frame(wire[start : start + 480]))
    assert len(frames) == 10


def test_inbound_takes_narrowband_rates() -> None:
    inbound = InboundAudio()
    frames = []
    narrow = tone(300, 8000, 160 * 20)
    for start in range(0, narrow.size, 160):
        frames += inbound.push(wire_frame(narrow[start : start + 160], layout="mono", rate=8000))
    assert len(frames) == 20
    assert dominant_hz(np.concatenate(frames)[800:], 16000) == pytest.approx(300, abs=10)


def test_inbound_removes_what_16k_cannot_carry() -> None:
    inbound = InboundAudio()
    wire = tone(12000, WIRE_RATE, WIRE_SAMPLES * 20)
    frames = []
    for start in range(0, wire.size, WIRE_SAMPLES):
        frames += inbound.push(wire_frame(wire[start : start + WIRE_SAMPLES]))
    assert np.abs(np.concatenate(frames)[800:]).max() < 80  # > 40 dB down, no alias at 4 kHz


# ---- outbound -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("layout", "channels"), [("mono", 1), ("stereo", 2)])
def test_outbound_frames_are_48k_s16_960_samples_with_running_pts(layout: str, channels: int) -> None:
    outbound = OutboundAudio(layout)  # type: ignore[arg-type]
    pts = []
    for _ in range(5):
        frame = outbound.convert(tone(440, 16000, FRAME_SAMPLES))
        assert frame.samples == WIRE_SAMPLES
        assert frame.sample_rate == WIRE_RATE
        assert frame.format.name == "s16"
        assert len(frame.layout.channels) == channels
        assert frame.time_base == fractions.Fraction(1, WIRE_RATE)
        pts.append(frame.pts)
    assert pts == [0, 960, 1920, 2880, 3840]


def test_outbound_stereo_carries_the_same_voice_on_both_channels() -> None:
    frame = OutboundAudio("stereo").convert(tone(440, 16000, FRAME_SAMPLES))
    interleaved = frame.to_ndarray().reshape(-1, 2)
    np.testing.assert_array_equal(interleaved[:, 0], interleaved[:, 1])


def test_outbound_refuses_a_frame_of_the_wrong_size() -> None:
    with pytest.raises(ValueError, match="320"):
        OutboundAudio().convert(np.zeros(160, dtype=np.int16))


def test_round_trip_keeps_the_signal_and_adds_about_a_millisecond() -> None:
    rng = np.random.default_rng(7)
    # Band-limited noise: what 16 kHz can carry goes through both filters.
    noise = np.convolve(rng.normal(0, 3000, FRAME_SAMPLES * 60), np.ones(4) / 4, mode="same").astype(np.int16)
    outbound, inbound = OutboundAudio("stereo"), InboundAudio()
    back = []
    for start in range(0, noise.size, FRAME_SAMPLES):
        back += inbound.push(outbound.convert(noise[start : start + FRAME_SAMPLES]))
    out = np.concatenate(back).astype(np.float64)
    ref = noise.astype(np.float64)
    window = slice(2000, out.size - 2000)

    def similarity(delay: int) -> float:
        return float(np.corrcoef(out[window], ref[window.start - delay : window.stop - delay])[0, 1])

    delay = max(range(64), key=similarity)
    assert delay <= 48  # at most 3 ms at 16 kHz through both filters
    assert similarity(delay) > 0.95


# ---- the clock ----------------------------------------------------------------------------------


async def test_pacer_gives_one_slot_per_20_ms() -> None:
    pacer = FramePacer()
    start = time.monotonic()
    for _ in range(11):  # the first slot is now
        await pacer.wait()
    assert time.monotonic() - start == pytest.approx(0.200, abs=0.03)


async def test_pacer_makes_up_a_late_wake_up_without_drifting() -> None:
    pacer = FramePacer()
    start = time.monotonic()
    await pacer.wait()
    time.sleep(0.05)  # noqa: ASYNC251 - a blocked loop: two and a half slots late
    for _ in range(10):
        await pacer.wait()
    assert time.monotonic() - start == pytest.approx(0.200, abs=0.03)
    assert pacer.resyncs == 0


async def test_pacer_restarts_after_a_long_stall() -> None:
    pacer = FramePacer(max_lag_ms=100)
    await pacer.wait()
    time.sleep(0.15)  # noqa: ASYNC251 - a stalled loop
    before = time.monotonic()
    await pacer.wait()
    await pacer.wait()
    assert pacer.resyncs == 1
    # No burst of catch-up frames: the next slot is a whole frame later.
    assert time.monotonic() - before >= 0.015


async def test_agent_track_ticks_once_per_frame_with_monotonic_pts() -> None:
    ticks = 0

    def tick() -> npt.NDArray[np.int16]:
        nonlocal ticks
        ticks += 1
        return tone(440, 16000, FRAME_SAMPLES)

    track = AgentAudioTrack(tick)
    start = time.monotonic()
    frames = [await track.recv() for _ in range(6)]
    assert time.monotonic() - start == pytest.approx(0.100, abs=0.03)
    assert ticks == 6
    pts = [int(f.pts or 0) for f in frames]
    assert pts == sorted(pts)
    assert np.all(np.diff(pts) == WIRE_SAMPLES)
    track.stop()
    from aiortc.mediastreams import MediaStreamError

    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_a_stopped_track_ends_a_recv_in_flight() -> None:
    from aiortc.mediastreams import MediaStreamError

    track = AgentAudioTrack(lambda: np.zeros(FRAME_SAMPLES, dtype=np.int16))
    await track.recv()
    pending = asyncio.ensure_future(track.recv())
    track.stop()
    with pytest.raises(MediaStreamError):
        await pending
