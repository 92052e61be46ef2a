"""The batched streaming engine for the speech LM (torch only): slots, scheduler, step loop, E2E engine.

Importable with only torch, numpy and safetensors installed.
"""

from voiceagent.serving.core import EngineConfig, EngineCore, EngineThread
from voiceagent.serving.protocol import (
    AddCall,
    AppendAudio,
    CancelTurn,
    EngineInput,
    EngineOutput,
    RemoveCall,
    StartTurn,
    TruncateTurn,
    TurnFinished,
    TurnOutput,
)
from voiceagent.serving.runner import DecodeRunner, serving_dtype
from voiceagent.serving.scheduler import CallState, Scheduler, StepPlan
from voiceagent.serving.slots import SlotPool, SlotsFullError

__all__ = [
    "AddCall",
    "AppendAudio",
    "CallState",
    "CancelTurn",
    "DecodeRunner",
    "EngineConfig",
    "EngineCore",
    "EngineInput",
    "EngineOutput",
    "EngineThread",
    "RemoveCall",
    "Scheduler",
    "SlotPool",
    "SlotsFullError",
    "StartTurn",
    "StepPlan",
    "TruncateTurn",
    "TurnFinished",
    "TurnOutput",
    "serving_dtype",
]
