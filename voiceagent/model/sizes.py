"""Sizes that bound serving: parameters (total and active per decoder token) and cache bytes per call."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from voiceagent.model.config import SpeechLMConfig

__all__ = ["CacheBytes", "ParameterCounts", "active_parameters", "cache_bytes_per_call", "parameter_counts"]


@dataclass(frozen=True)
class ParameterCounts:
    total: int  # every weight, all experts, encoder included
    encoder: int  # runs once per 80 ms frame, not per decoder token
    decoder_total: int  # decoder with all experts, embedding and heads
    active_per_token: int  # decoder weights one token touches: top_k routed experts + shared expert


@dataclass(frozen=True)
class CacheBytes:
    frames: int  # encoder frames in the turn
    eallqa: int  # frames × layers × d_c × dtype bytes
    multi_head: int  # frames × layers × 2 (K, V) × heads × head_dim × dtype bytes


def parameter_counts(config: SpeechLMConfig) -> ParameterCounts:
    """Count on a meta-device model (no memory is allocated)."""
    from voiceagent.model.speechlm import SpeechLM

    with torch.device("meta"):
        model = SpeechLM(config)
    total = sum(p.numel() for p in model.parameters())
    encoder = sum(p.numel() for p in model.encoder.parameters())
    decoder = total - encoder
    per_expert = 3 * config.dec_dim * config.expert_hidden
    idle = config.dec_layers * (config.n_experts - config.top_k) * per_expert
    return ParameterCounts(total, encoder, decoder, decoder - idle)


def active_parameters(config: SpeechLMConfig) -> int:
    """Decoder parameters active per token (embedding row lookups counted in full, like the heads)."""
    return parameter_counts(config).active_per_token


def cache_bytes_per_call(config: SpeechLMConfig, seconds: float, dtype_bytes: int = 2) -> CacheBytes:
    """Cross-attention cache of one call after `seconds` of caller audio: EALLQA vs plain multi-head."""
    frames = math.ceil(seconds * config.encoder_frame_rate_hz)
    eallqa = frames * config.dec_layers * config.d_latent * dtype_bytes
    multi_head = frames * config.dec_layers * 2 * config.dec_heads * config.head_dim * dtype_bytes
    return CacheBytes(frames, eallqa, multi_head)
