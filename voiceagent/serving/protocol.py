"""What goes into the engine core and what comes out of it (plain objects on thread-safe queues).

Tokens are bytes: ids 0–255 are UTF-8 bytes of text, then a few control tokens. A model trained for
serving brings its own tokenizer; the byte vocabulary keeps the engine honest without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor

__all__ = [
    "EOS",
    "TURN_START",
    "USER_TURN",
    "AddCall",
    "AppendAudio",
    "CancelTurn",
    "EngineInput",
    "EngineOutput",
    "FinishReason",
    "RemoveCall",
    "StartTurn",
    "TruncateTurn",
    "TurnFinished",
    "TurnOutput",
    "encode_text",
]

TURN_START = 256  # the agent speaks next
EOS = 257  # the agent has finished its turn
USER_TURN = 258  # the caller's audio turn ended here


def encode_text(text: str) -> list[int]:
    return list(text.encode("utf-8"))


# ---- in ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddCall:
    call_id: str


@dataclass(frozen=True)
class RemoveCall:
    call_id: str


@dataclass(frozen=True)
class AppendAudio:
    call_id: str
    audio: Tensor  # (N,) float32 in [-1, 1] at the model's sample rate


@dataclass(frozen=True)
class StartTurn:
    """Speak: append `prompt` (after the audio heard so far) and decode up to `max_steps` steps."""

    call_id: str
    turn_id: str
    prompt: tuple[int, ...] = (USER_TURN, TURN_START)
    max_steps: int = 64


@dataclass(frozen=True)
class CancelTurn:
    """Stop the turn between steps (barge-in). `turn_id` None: whatever turn is running."""

    call_id: str
    turn_id: str | None = None


@dataclass(frozen=True)
class TruncateTurn:
    """Keep only the first `keep_tokens` tokens of the turn in the call's context (what was heard);
    stops the turn if it is still running."""

    call_id: str
    turn_id: str
    keep_tokens: int


EngineInput = AddCall | RemoveCall | AppendAudio | StartTurn | CancelTurn | TruncateTurn

# ---- out ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TurnOutput:
    """One step of a turn: a token and its block of speech frames (and their audio with a vocoder)."""

    call_id: str
    turn_id: str
    index: int  # 0 for the token the prefill gave
    token: int
    mel: Tensor  # (n_mel_out, n_mels) log-mel, CPU float32
    audio: Tensor | None = None  # (n_mel_out * hop_length,) float32 at the model's sample rate


FinishReason = Literal["eos", "length", "cancelled", "truncated", "error"]


@dataclass(frozen=True)
class TurnFinished:
    call_id: str
    turn_id: str  # "" when the call itself was refused (no free slot)
    reason: FinishReason
    tokens: tuple[int, ...] = ()  # the turn's tokens as kept in the context
    message: str | None = None


EngineOutput = TurnOutput | TurnFinished
