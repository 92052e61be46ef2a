"""The e2e engine as ``voiceagent worker --engine e2e`` serves it: a preset or a checkpoint, on a device."""

from __future__ import annotations

from pathlib import Path

import torch

from voiceagent.model import SpeechLM, load_checkpoint, preset
from voiceagent.serving.core import EngineConfig
from voiceagent.serving.e2e import E2EEngine

__all__ = ["build_e2e_engine"]


def build_e2e_engine(
    preset_name: str = "tiny",
    *,
    device: str | None = None,
    checkpoint: Path | None = None,
    max_slots: int = 64,
) -> E2EEngine:
    """An E2E engine on ``device`` (cuda when there is one); random weights unless ``checkpoint``.

    No pretrained weights exist to download here, so without a checkpoint the worker serves a
    randomly initialised model of the preset's size: right for load tests, not for conversations.
    """
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if checkpoint is not None:
        model = load_checkpoint(checkpoint, device=target)
    else:
        torch.manual_seed(0)
        model = SpeechLM(preset(preset_name)).to(target).eval()
    return E2EEngine(model, EngineConfig(max_slots=max_slots))
