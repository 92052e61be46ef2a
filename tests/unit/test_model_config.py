import dataclasses
import subprocess
import sys

import pytest

from voiceagent.errors import ConfigError
from voiceagent.model.config import PRESETS, SpeechLMConfig, preset
from voiceagent.model.sizes import cache_bytes_per_call

torch = pytest.importorskip("torch")


def test_presets_round_trip_through_json() -> None:
    for config in PRESETS.values():
        assert SpeechLMConfig.from_json(config.to_json()) == config
    assert preset("tiny").encoder_frame_rate_hz == 12.5


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown"):
        SpeechLMConfig.from_dict({"n_mels": 80, "colour": "blue"})
    with pytest.raises(ConfigError):
        SpeechLMConfig.from_json("[1, 2]")
    with pytest.raises(ConfigError):
        SpeechLMConfig(n_experts=2, top_k=3)
    with pytest.raises(ConfigError, match="preset"):
        preset("huge")


def test_parameter_counts_of_presets() -> None:
    from voiceagent.model.sizes import active_parameters, parameter_counts

    counts = {name: parameter_counts(config) for name, config in PRESETS.items()}
    for name, c in counts.items():
        total, encoder, active = c.total / 1e6, c.encoder / 1e6, c.active_per_token / 1e6
        print(f"{name}: total {total:.1f} M, encoder {encoder:.1f} M, active per token {active:.1f} M")
    assert 1e6 < counts["tiny"].total < 10e6
    assert 0.9e9 <= active_parameters(preset("1b-active")) <= 1.15e9
    assert counts["1b-active"].total > 2.5 * counts["1b-active"].active_per_token  # sparse: most experts idle


def test_active_parameters_by_hand_for_tiny() -> None:
    from voiceagent.model.sizes import parameter_counts

    c = preset("tiny")
    idle_experts = c.dec_layers * (c.n_experts - c.top_k) * 3 * c.dec_dim * c.expert_hidden
    counts = parameter_counts(c)
    assert counts.active_per_token == counts.decoder_total - idle_experts
    assert counts.total == counts.encoder + counts.decoder_total


def test_cache_bytes_match_design_hand_calculation() -> None:
    # DESIGN §6: 10 s at 12.5 Hz = 125 frames; 24 layers; d_c = 512; bf16.
    config = dataclasses.replace(preset("1b-active"), dec_layers=24, d_latent=512, dec_heads=16, head_dim=128)
    got = cache_bytes_per_call(config, seconds=10.0)
    assert got.frames == 125
    assert got.eallqa == 125 * 24 * 512 * 2 == 3_072_000  # ≈ 3 MB
    assert got.multi_head == 125 * 24 * 2 * 16 * 128 * 2  # K and V for 16 heads of 128
    assert cache_bytes_per_call(config, 10.0, dtype_bytes=4).eallqa == 2 * got.eallqa


def test_model_package_needs_only_torch_numpy_safetensors() -> None:
    code = (
        "import sys, voiceagent.model; "
        "bad = ('librosa', 'pydantic', 'pydantic_settings', 'yaml', 'soxr', 'onnxruntime', 'sqlalchemy', "
        "'fastapi', 'httpx', 'redis', 'soundfile'); "
        "print(sorted(m for m in bad if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
