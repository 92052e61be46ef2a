"""The end-to-end speech LM of DESIGN §6 (torch only): streaming encoder, EALLQA cross-attention,
MoE decoder with text and speech heads, Griffin-Lim vocoder, checkpoints.

Importable with only torch, numpy and safetensors installed.
"""

from voiceagent.model.checkpoint import load_checkpoint, save_checkpoint
from voiceagent.model.config import PRESETS, SpeechLMConfig, preset
from voiceagent.model.eallqa import EALLQACrossAttention
from voiceagent.model.encoder import EncoderState, SpeechEncoder
from voiceagent.model.frontend import LogMelFrontend
from voiceagent.model.moe import MoEFeedForward
from voiceagent.model.sizes import (
    CacheBytes,
    ParameterCounts,
    active_parameters,
    cache_bytes_per_call,
    parameter_counts,
)
from voiceagent.model.speechlm import CallCache, SpeechLM, SpeechLMOutput
from voiceagent.model.vocoder import GriffinLimVocoder, Vocoder

__all__ = [
    "PRESETS",
    "CacheBytes",
    "CallCache",
    "EALLQACrossAttention",
    "EncoderState",
    "GriffinLimVocoder",
    "LogMelFrontend",
    "MoEFeedForward",
    "ParameterCounts",
    "SpeechEncoder",
    "SpeechLM",
    "SpeechLMConfig",
    "SpeechLMOutput",
    "Vocoder",
    "active_parameters",
    "cache_bytes_per_call",
    "load_checkpoint",
    "parameter_counts",
    "preset",
    "save_checkpoint",
]
