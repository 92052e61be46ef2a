import dataclasses
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from voiceagent.errors import ModelChecksumError, ModelError, ModelNotFoundError  # noqa: E402
from voiceagent.model.checkpoint import WEIGHTS_FILE, load_checkpoint, save_checkpoint, sha256_of  # noqa: E402
from voiceagent.model.config import preset  # noqa: E402
from voiceagent.model.speechlm import SpeechLM  # noqa: E402

CONFIG = dataclasses.replace(preset("tiny"), dec_layers=1, enc_layers=1)


def _outputs(model: SpeechLM) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    g = torch.Generator().manual_seed(1)
    mel = torch.randn(1, 40, CONFIG.n_mels, generator=g)
    tokens = torch.randint(0, CONFIG.vocab_size, (1, 5), generator=g)
    with torch.no_grad():
        frames = model.encoder(mel)
        out = model(tokens, frames, torch.tensor([frames.shape[1]]))
    return frames, out.text_logits, out.mel


def test_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SpeechLM(CONFIG).eval()
    digest = save_checkpoint(model, tmp_path)
    loaded = load_checkpoint(tmp_path, sha256=digest)
    assert loaded.config == CONFIG
    assert not loaded.training
    assert all(p.device.type == "cpu" for p in loaded.parameters())
    for a, b in zip(_outputs(model), _outputs(loaded), strict=True):
        assert torch.equal(a, b)


def test_checksum_mismatch_is_refused(tmp_path: Path) -> None:
    save_checkpoint(SpeechLM(CONFIG), tmp_path)
    with pytest.raises(ModelChecksumError):
        load_checkpoint(tmp_path, sha256="0" * 64)
    assert len(sha256_of(tmp_path / WEIGHTS_FILE)) == 64


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        load_checkpoint(tmp_path)
    save_checkpoint(SpeechLM(CONFIG), tmp_path)
    (tmp_path / WEIGHTS_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError):
        load_checkpoint(tmp_path)


def test_wrong_architecture_is_refused(tmp_path: Path) -> None:
    save_checkpoint(SpeechLM(CONFIG), tmp_path)
    other = dataclasses.replace(CONFIG, dec_layers=2)
    other.save(tmp_path / "config.json")
    with pytest.raises(ModelError, match="cannot load"):
        load_checkpoint(tmp_path)
