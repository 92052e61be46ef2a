"""read_audio, write_wav and to_pipeline against real files in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voiceagent.audio.frames import SAMPLE_RATE, float_to_pcm16
from voiceagent.audio.wav import AudioClip, read_audio, to_pipeline, write_wav
from voiceagent.errors import AudioError, AudioFormatError


def _sine(freq_hz: float, sample_rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def test_int16_round_trip_is_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    pcm = rng.integers(-32768, 32768, size=4000, dtype=np.int16)
    path = tmp_path / "a.wav"
    write_wav(path, pcm, 16000)
    clip = read_audio(path)
    assert (clip.sample_rate, clip.channels) == (16000, 1)
    assert clip.samples.dtype == np.float32
    np.testing.assert_array_equal(float_to_pcm16(clip.samples), pcm)
    assert sf.info(str(path)).subtype == "PCM_16"


def test_stereo_48k_is_averaged_to_mono(tmp_path: Path) -> None:
    left = float_to_pcm16(_sine(440, 48000, 0.25))
    right = float_to_pcm16(_sine(1000, 48000, 0.25, amplitude=0.25))
    path = tmp_path / "stereo.wav"
    write_wav(path, np.stack([left, right], axis=1), 48000)
    clip = read_audio(path)
    assert (clip.sample_rate, clip.channels) == (48000, 2)
    assert clip.samples.shape == (12000,)
    expected = (left.astype(np.float32) + right.astype(np.float32)) / 2 / 32768
    np.testing.assert_allclose(clip.samples, expected, atol=1e-6)
    assert clip.duration_s == pytest.approx(0.25)


def test_8k_file(tmp_path: Path) -> None:
    pcm = float_to_pcm16(_sine(300, 8000, 0.5))
    path = tmp_path / "narrowband.wav"
    write_wav(path, pcm, 8000)
    clip = read_audio(path)
    assert clip.sample_rate == 8000
    assert clip.duration_s == pytest.approx(0.5)
    np.testing.assert_array_equal(float_to_pcm16(clip.samples), pcm)


@pytest.mark.parametrize(
    ("subtype", "atol"), [("FLOAT", 1e-7), ("PCM_24", 1e-6), ("PCM_32", 1e-7), ("PCM_U8", 0.01)]
)
def test_other_wav_sample_formats(tmp_path: Path, subtype: str, atol: float) -> None:
    signal = _sine(440, 22050, 0.2)
    path = tmp_path / f"{subtype}.wav"
    sf.write(str(path), signal, 22050, subtype=subtype)
    clip = read_audio(path)
    assert clip.sample_rate == 22050
    np.testing.assert_allclose(clip.samples, signal, atol=atol)


def test_flac_is_read_through_libsndfile(tmp_path: Path) -> None:
    pcm = float_to_pcm16(_sine(440, 44100, 0.2))
    path = tmp_path / "a.flac"
    sf.write(str(path), pcm, 44100, format="FLAC")
    clip = read_audio(str(path))
    assert clip.sample_rate == 44100
    np.testing.assert_array_equal(float_to_pcm16(clip.samples), pcm)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioError, match="audio file not found") as info:
        read_audio(path)
    assert str(path) in str(info.value)
    assert not isinstance(info.value, AudioFormatError)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="directory") as info:
        read_audio(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert not isinstance(info.value, AudioFormatError)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.wav", b"this is not audio at all\n" * 10),
        ("truncated.wav", b"RIFF\x24\x00\x00\x00WAVEfmt "),
    ],
)
def test_not_audio_is_a_format_error_naming_the_file(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioFormatError, match="not a readable audio file") as info:
        read_audio(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value.__cause__, sf.SoundFileError)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.touch()
    with pytest.raises(AudioFormatError, match="is empty") as info:
        read_audio(path)
    assert str(path) in str(info.value)


def test_zero_length_wav(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    write_wav(path, np.zeros(0, dtype=np.int16), 16000)
    with pytest.raises(AudioFormatError, match="contains no audio samples") as info:
        read_audio(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("sample_rate", [4000, 384000])
def test_sample_rate_out_of_range(tmp_path: Path, sample_rate: int) -> None:
    path = tmp_path / "odd.wav"
    write_wav(path, np.zeros(100, dtype=np.int16), sample_rate)
    with pytest.raises(AudioFormatError, match=f"{sample_rate} Hz") as info:
        read_audio(path)
    assert str(path) in str(info.value)


def test_write_float_is_clipped(tmp_path: Path) -> None:
    path = tmp_path / "loud.wav"
    write_wav(path, np.array([0.0, 0.5, 1.5, -2.0, -1.0], dtype=np.float64), 16000)
    data, _ = sf.read(str(path), dtype="int16")
    np.testing.assert_array_equal(data, [0, 16384, 32767, -32768, -32768])


def test_write_creates_parents_and_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "calls" / "2024" / "rec.wav"
    write_wav(path, np.ones(10, dtype=np.int16), 16000)
    write_wav(path, np.full(20, 3, dtype=np.int16), 16000)
    data, _ = sf.read(str(path), dtype="int16")
    np.testing.assert_array_equal(data, np.full(20, 3))
    assert [p.name for p in path.parent.iterdir()] == ["rec.wav"]  # no temp files left behind
    assert path.stat().st_mode & 0o777 == 0o644


def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "rec.wav"
    write_wav(path, np.ones(10, dtype=np.int16), 16000)
    before = path.read_bytes()

    def broken_write(*args: object, **kwargs: object) -> None:
        raise sf.LibsndfileError(1, "simulated: ")

    monkeypatch.setattr(sf, "write", broken_write)
    with pytest.raises(AudioError, match="cannot write"):
        write_wav(path, np.zeros(10, dtype=np.int16), 16000)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["rec.wav"]


def test_write_refuses_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        write_wav(tmp_path / "a.wav", np.zeros(4, dtype=np.int16), 0)
    with pytest.raises(ValueError, match="shape"):
        write_wav(tmp_path / "a.wav", np.zeros((2, 2, 2), dtype=np.int16), 16000)
    with pytest.raises(TypeError, match="int32"):
        write_wav(tmp_path / "a.wav", np.zeros(4, dtype=np.int32), 16000)  # type: ignore[arg-type]
    assert not (tmp_path / "a.wav").exists()


@pytest.mark.parametrize("sample_rate", [8000, 16000, 24000, 48000])
def test_to_pipeline_gives_16k_int16(sample_rate: int) -> None:
    clip = AudioClip(samples=_sine(1000, sample_rate, 0.5), sample_rate=sample_rate, channels=1)
    pcm = to_pipeline(clip)
    assert pcm.dtype == np.int16
    assert abs(len(pcm) - SAMPLE_RATE // 2) <= 2
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    assert np.fft.rfftfreq(len(pcm), 1 / SAMPLE_RATE)[np.argmax(spectrum)] == pytest.approx(1000, abs=3)
    assert np.max(np.abs(pcm[800:-800])) == pytest.approx(16384, rel=0.02)
