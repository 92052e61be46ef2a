from pathlib import Path

import pytest

from voiceagent.config import load_settings
from voiceagent.errors import ConfigError


def test_defaults_are_the_embedded_ones() -> None:
    s = load_settings()
    assert s.asr_model == "whisper-tiny.en"
    assert s.tts_model == "hibari-heart"
    assert s.llm_base_url is None


def test_env_beats_toml_and_overrides_beat_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "va.toml"
    f.write_text('[voiceagent]\nturn_hangover_ms = 700\nllm_model = "from-file"\n')
    monkeypatch.setenv("VOICEAGENT_TURN_HANGOVER_MS", "650")
    s = load_settings(f)
    assert s.turn_hangover_ms == 650
    assert s.llm_model == "from-file"
    assert load_settings(f, turn_hangover_ms=400).turn_hangover_ms == 400


def test_bad_values_and_files_give_config_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("turn_hangover_ms = [")
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("hangover = 3\n")
    with pytest.raises(ConfigError, match="hangover"):
        load_settings(unknown)
    monkeypatch.setenv("VOICEAGENT_VAD_THRESHOLD", "7")
    with pytest.raises(ConfigError, match="vad_threshold"):
        load_settings()


def test_settings_pickle_round_trip() -> None:
    import pickle

    s = load_settings(turn_hangover_ms=450)
    assert pickle.loads(pickle.dumps(s)) == s
