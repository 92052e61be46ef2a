"""G.711 against the reference coder that Python 3.11's audioop implements, over every input."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest

from voiceagent.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    audioop = pytest.importorskip("audioop", reason="audioop (the reference) was removed in Python 3.13")

EVERY_PCM = np.arange(-32768, 32768, dtype=np.int16)
EVERY_CODE = np.arange(256, dtype=np.uint8)

Encoder = Callable[[np.ndarray], np.ndarray]
Decoder = Callable[[np.ndarray], np.ndarray]
LAWS = [
    pytest.param(ulaw_encode, ulaw_decode, "lin2ulaw", "ulaw2lin", id="ulaw"),
    pytest.param(alaw_encode, alaw_decode, "lin2alaw", "alaw2lin", id="alaw"),
]


def _reference(name: str, data: bytes) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        out: bytes = getattr(audioop, name)(data, 2)
    return out


@pytest.mark.parametrize(("encode", "decode", "ref_encode", "ref_decode"), LAWS)
def test_encode_matches_reference_for_every_sample(
    encode: Encoder, decode: Decoder, ref_encode: str, ref_decode: str
) -> None:
    codes = encode(EVERY_PCM)
    assert codes.dtype == np.uint8
    expected = np.frombuffer(_reference(ref_encode, EVERY_PCM.tobytes()), dtype=np.uint8)
    mismatches = np.flatnonzero(codes != expected)
    assert mismatches.size == 0, f"first mismatching inputs: {EVERY_PCM[mismatches[:5]]}"


@pytest.mark.parametrize(("encode", "decode", "ref_encode", "ref_decode"), LAWS)
def test_decode_matches_reference_for_every_code(
    encode: Encoder, decode: Decoder, ref_encode: str, ref_decode: str
) -> None:
    pcm = decode(EVERY_CODE)
    assert pcm.dtype == np.int16
    expected = np.frombuffer(_reference(ref_decode, EVERY_CODE.tobytes()), dtype=np.int16)
    np.testing.assert_array_equal(pcm, expected)


@pytest.mark.parametrize(("encode", "decode", "ref_encode", "ref_decode"), LAWS)
def test_decode_accepts_bytes(encode: Encoder, decode: Decoder, ref_encode: str, ref_decode: str) -> None:
    np.testing.assert_array_equal(decode(bytes(range(256))), decode(EVERY_CODE))  # type: ignore[arg-type]


@pytest.mark.parametrize(("encode", "decode", "ref_encode", "ref_decode"), LAWS)
def test_round_trip_error_is_bounded(
    encode: Encoder, decode: Decoder, ref_encode: str, ref_decode: str
) -> None:
    back = decode(encode(EVERY_PCM)).astype(np.int32)
    error = np.abs(back - EVERY_PCM.astype(np.int32))
    magnitude = np.abs(EVERY_PCM.astype(np.int32))
    # A logarithmic quantiser: the error grows with the level but stays a few percent of it (the
    # top step is 1024, so at most half that, plus the clipping above the largest level, 32124 for
    # µ-law), and quiet samples keep a fine step.
    loud = magnitude >= 1024
    assert np.max(error) <= 644
    assert np.max(error[loud] / magnitude[loud]) < 0.036
    assert np.max(error[~loud]) <= 36
    assert np.max(error[magnitude < 64]) <= 8


@pytest.mark.parametrize(("encode", "decode", "ref_encode", "ref_decode"), LAWS)
def test_codes_decode_to_fixed_points(
    encode: Encoder, decode: Decoder, ref_encode: str, ref_decode: str
) -> None:
    # Every decoded level is a reconstruction value, so it must encode back to its own code.
    np.testing.assert_array_equal(decode(encode(decode(EVERY_CODE))), decode(EVERY_CODE))


def test_known_codes() -> None:
    zero = np.zeros(1, dtype=np.int16)
    assert ulaw_encode(zero)[0] == 0xFF  # µ-law silence
    assert alaw_encode(zero)[0] == 0xD5  # A-law silence
    assert ulaw_decode(b"\x00\x80").tolist() == [-32124, 32124]
    assert alaw_decode(b"\x2a\xaa").tolist() == [-32256, 32256]


def test_keeps_shape() -> None:
    block = EVERY_PCM[:320].reshape(2, 160)
    assert ulaw_encode(block).shape == (2, 160)
    assert alaw_decode(alaw_encode(block)).shape == (2, 160)


@pytest.mark.parametrize("encode", [ulaw_encode, alaw_encode])
def test_encode_refuses_other_dtypes(encode: Encoder) -> None:
    with pytest.raises(TypeError, match="int16"):
        encode(np.zeros(4, dtype=np.float32))
    with pytest.raises(TypeError, match="int16"):
        encode(np.zeros(4, dtype=np.int32))


@pytest.mark.parametrize("decode", [ulaw_decode, alaw_decode])
def test_decode_refuses_other_dtypes(decode: Decoder) -> None:
    with pytest.raises(TypeError, match="uint8"):
        decode(np.zeros(4, dtype=np.int16))
