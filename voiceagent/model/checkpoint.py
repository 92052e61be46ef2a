"""Checkpoints: `model.safetensors` (weights) + `config.json` in one directory.

Loading builds the model on the meta device (no memory, no init), reads the weights memory-mapped
through safetensors, and assigns them (`load_state_dict(..., assign=True)`), so a large model costs
one copy of its weights at most. A sha256 of the weights file is checked first when given.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from voiceagent.errors import ModelChecksumError, ModelError, ModelNotFoundError
from voiceagent.model.config import SpeechLMConfig
from voiceagent.model.speechlm import SpeechLM

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "load_checkpoint", "save_checkpoint", "sha256_of"]

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(model: SpeechLM, directory: Path) -> str:
    """Write weights and config into `directory`; returns the weights file's sha256."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    state = {name: t.detach().contiguous().cpu() for name, t in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    model.config.save(directory / CONFIG_FILE)
    return sha256_of(directory / WEIGHTS_FILE)


def load_checkpoint(
    directory: Path,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    sha256: str | None = None,
) -> SpeechLM:
    """Build the model on the meta device and assign the mmapped weights; the model is in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights, config_path = directory / WEIGHTS_FILE, directory / CONFIG_FILE
    for path in (weights, config_path):
        if not path.is_file():
            raise ModelNotFoundError(f"speech LM checkpoint file missing: {path}")
    if sha256 is not None:
        actual = sha256_of(weights)
        if actual != sha256.lower():
            raise ModelChecksumError(f"{weights}: sha256 {actual}, expected {sha256}")
    config = SpeechLMConfig.load(config_path)
    with torch.device("meta"):
        model = SpeechLM(config)
    try:
        state = load_file(str(weights), device=str(device))
        model.load_state_dict(state, strict=True, assign=True)
    except (RuntimeError, OSError, SafetensorError) as exc:  # bad file, missing or unexpected keys
        raise ModelError(f"cannot load speech LM weights from {weights}: {exc}") from exc
    if dtype is not None:
        model = model.to(dtype)
    return model.eval()
