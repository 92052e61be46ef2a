"""ITU-T G.711 µ-law and A-law companding for 16-bit PCM, by table lookup.

Python 3.13 removed ``audioop``; these tables give the same bytes it gave (the classic reference
coder: µ-law from the top 14 bits with a bias of 33 and clipping, A-law from the top 13 bits
with even-bit inversion). The 64 Ki-entry encode tables and 256-entry decode tables are built once at
import (about a millisecond); encoding or decoding a frame is then one indexing operation.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["alaw_decode", "alaw_encode", "ulaw_decode", "ulaw_encode"]

_ULAW_BIAS = 33  # added to the 14-bit magnitude so every segment starts at a power of two
_ULAW_MAX = 0x1FFF  # top of the last segment: louder samples all get the loudest code
_ULAW_SEGMENT_ENDS = np.array([(64 << s) - 1 for s in range(8)])  # 0x3F .. 0x1FFF
_ALAW_SEGMENT_ENDS = np.array([(32 << s) - 1 for s in range(8)])  # 0x1F .. 0xFFF
_ALAW_INVERT = 0x55  # A-law transmits every even bit inverted


def _all_pcm16() -> npt.NDArray[np.int32]:
    # Ordered by the int16's bit pattern, so a table is indexed with ``pcm.view(np.uint16)``.
    return np.arange(1 << 16, dtype=np.uint16).view(np.int16).astype(np.int32)


def _build_ulaw_encode() -> npt.NDArray[np.uint8]:
    value = _all_pcm16() >> 2  # 14-bit, rounded towards -inf
    negative = value < 0
    magnitude = np.minimum(np.abs(value) + _ULAW_BIAS, _ULAW_MAX)
    segment = np.searchsorted(_ULAW_SEGMENT_ENDS, magnitude)
    mantissa = (magnitude >> (segment + 1)) & 0x0F
    code = (segment << 4) | mantissa
    # µ-law sends the one's complement; the sign bit is set for positive values.
    inverted: npt.NDArray[np.int64] = np.where(negative, code ^ 0x7F, code ^ 0xFF)
    return inverted.astype(np.uint8)


def _build_ulaw_decode() -> npt.NDArray[np.int16]:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    segment = (code >> 4) & 0x07
    magnitude = (((code & 0x0F) << 3) + (_ULAW_BIAS << 2)) << segment
    value = np.where(code & 0x80, (_ULAW_BIAS << 2) - magnitude, magnitude - (_ULAW_BIAS << 2))
    return value.astype(np.int16)


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    value = _all_pcm16() >> 3  # 13-bit, rounded towards -inf
    negative = value < 0
    # One's complement for negatives keeps the quantiser symmetric around -0.5.
    magnitude = np.where(negative, -value - 1, value)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, magnitude)
    mantissa = (magnitude >> np.maximum(segment, 1)) & 0x0F
    code = (segment << 4) | mantissa
    code = np.where(negative, code ^ _ALAW_INVERT, code ^ (_ALAW_INVERT | 0x80))
    return code.astype(np.uint8)


def _build_alaw_decode() -> npt.NDArray[np.int16]:
    code = np.arange(256, dtype=np.int32) ^ _ALAW_INVERT
    segment = (code >> 4) & 0x07
    step = ((code & 0x0F) << 1) + 1  # the middle of the quantisation interval
    magnitude = np.where(segment == 0, step << 3, (step + 32) << (segment + 2))
    value = np.where(code & 0x80, magnitude, -magnitude)
    return value.astype(np.int16)


_ULAW_ENCODE = _build_ulaw_encode()
_ULAW_DECODE = _build_ulaw_decode()
_ALAW_ENCODE = _build_alaw_encode()
_ALAW_DECODE = _build_alaw_decode()


def ulaw_encode(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.uint8]:
    """int16 samples as G.711 µ-law codes, one byte each."""
    return _ULAW_ENCODE[_pcm_index(pcm)]


def ulaw_decode(codes: npt.NDArray[np.uint8] | bytes) -> npt.NDArray[np.int16]:
    """G.711 µ-law codes (an uint8 array or raw bytes) as int16 samples."""
    return _ULAW_DECODE[_code_index(codes)]


def alaw_encode(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.uint8]:
    """int16 samples as G.711 A-law codes, one byte each."""
    return _ALAW_ENCODE[_pcm_index(pcm)]


def alaw_decode(codes: npt.NDArray[np.uint8] | bytes) -> npt.NDArray[np.int16]:
    """G.711 A-law codes (an uint8 array or raw bytes) as int16 samples."""
    return _ALAW_DECODE[_code_index(codes)]


def _pcm_index(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.uint16]:
    # Any other dtype would index the table by value and give silently wrong codes.
    if pcm.dtype != np.int16:
        raise TypeError(f"G.711 encoding needs int16 samples, got {pcm.dtype}")
    return pcm.view(np.uint16)


def _code_index(codes: npt.NDArray[np.uint8] | bytes) -> npt.NDArray[np.uint8]:
    if isinstance(codes, bytes | bytearray | memoryview):
        return np.frombuffer(codes, dtype=np.uint8)
    if codes.dtype != np.uint8:
        raise TypeError(f"G.711 decoding needs uint8 codes or bytes, got {codes.dtype}")
    return codes
