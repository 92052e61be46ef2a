"""Configuration of the end-to-end speech LM (DESIGN §6): one frozen dataclass and named presets.

Frame rates: the front end gives 100 Hz log-mel frames (hop 160 at 16 kHz); the encoder's causal conv
subsampling (three stride-2 convolutions, ×8) brings them to 12.5 Hz (80 ms per encoder frame).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voiceagent.errors import ConfigError

__all__ = ["PRESETS", "SpeechLMConfig", "preset"]


@dataclass(frozen=True)
class SpeechLMConfig:
    """Every size of the model. Derived figures are properties, so a JSON file holds only the knobs."""

    # Front end: log-mel at 100 Hz.
    sample_rate: int = 16_000
    n_fft: int = 400
    hop_length: int = 160
    n_mels: int = 80
    f_min_hz: float = 0.0
    f_max_hz: float = 8_000.0
    # Encoder: causal conv subsampling (×2 per conv layer) then a causal transformer.
    subsample_layers: int = 3
    conv_kernel: int = 3
    conv_channels: int = 256
    enc_layers: int = 4
    enc_dim: int = 256
    enc_heads: int = 4
    enc_ffn_dim: int = 1024
    enc_window_frames: int = 64  # attention window of the encoder, in 12.5 Hz frames (incl. the current one)
    # EALLQA cross-attention: d_c of the shared latent cached per encoder frame and layer.
    d_latent: int = 64
    # Decoder: causal self-attention with a latent (MLA-style) cache, EALLQA cross-attention, MoE FFN.
    dec_layers: int = 2
    dec_dim: int = 256
    dec_heads: int = 4
    head_dim: int = 64
    d_self_latent: int = 64
    rope_dim: int = 16  # decoupled RoPE key per token, shared by all heads
    n_experts: int = 4
    top_k: int = 2
    expert_hidden: int = 256
    shared_expert_hidden: int = 256  # 0: no shared expert
    vocab_size: int = 512
    # Speech head: mel frames emitted per decoder step (and fed back as the next step's input).
    n_mel_out: int = 8
    rope_base: float = 10_000.0
    norm_eps: float = 1e-6
    max_text_tokens: int = 512
    max_encoder_frames: int = 512

    def __post_init__(self) -> None:
        if self.top_k > self.n_experts or self.top_k < 1:
            raise ConfigError(f"top_k must be in 1..n_experts, got {self.top_k} of {self.n_experts}")
        if self.enc_dim % self.enc_heads or (self.enc_dim // self.enc_heads) % 2:
            raise ConfigError("enc_dim must split into enc_heads heads of even size")
        if self.rope_dim % 2 or self.rope_dim < 2:
            raise ConfigError("rope_dim must be even and positive (RoPE)")
        if self.enc_window_frames < 1:
            raise ConfigError("enc_window_frames must be at least 1")

    @property
    def self_cache_dim(self) -> int:
        """Values cached per token and decoder layer for self-attention: latent + RoPE key."""
        return self.d_self_latent + self.rope_dim

    @property
    def subsample_factor(self) -> int:
        return int(2**self.subsample_layers)

    @property
    def mel_frame_rate_hz(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def encoder_frame_rate_hz(self) -> float:
        return self.mel_frame_rate_hz / self.subsample_factor

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpeechLMConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown speech LM config keys: {unknown}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SpeechLMConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"speech LM config is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError("speech LM config must be a JSON object")
        return cls.from_dict(data)

    def save(self, path: Path) -> None:
        path.write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> SpeechLMConfig:
        return cls.from_json(path.read_text(encoding="utf-8"))


PRESETS: dict[str, SpeechLMConfig] = {
    # Unit tests on a CPU: a few million parameters.
    "tiny": SpeechLMConfig(),
    # A development size that trains on one GPU.
    "small": SpeechLMConfig(
        conv_channels=512,
        enc_layers=8,
        enc_dim=512,
        enc_heads=8,
        enc_ffn_dim=2048,
        enc_window_frames=128,
        d_latent=256,
        dec_layers=12,
        dec_dim=768,
        dec_heads=12,
        head_dim=64,
        d_self_latent=256,
        rope_dim=32,
        n_experts=8,
        top_k=2,
        expert_hidden=1024,
        shared_expert_hidden=1024,
        vocab_size=32_000,
        max_text_tokens=4096,
        max_encoder_frames=4096,
    ),
    # DESIGN §6 serving size: ~1 B parameters active per decoder token, 24 layers, d_c = 512.
    "1b-active": SpeechLMConfig(
        conv_channels=768,
        enc_layers=12,
        enc_dim=768,
        enc_heads=12,
        enc_ffn_dim=3072,
        enc_window_frames=256,
        d_latent=512,
        dec_layers=24,
        dec_dim=2048,
        dec_heads=16,
        head_dim=128,
        d_self_latent=512,
        rope_dim=64,
        n_experts=16,
        top_k=2,
        expert_hidden=768,
        shared_expert_hidden=768,
        vocab_size=32_000,
        max_text_tokens=8192,
        max_encoder_frames=8192,
    ),
}


def preset(name: str) -> SpeechLMConfig:
    """The named preset (`tiny`, `small`, `1b-active`)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown speech LM preset {name!r}; known: {sorted(PRESETS)}") from None
