"""Which engine a worker serves: built by name, heavy imports only for the engine asked for."""

from __future__ import annotations

from typing import Literal

from voiceagent.config import Settings
from voiceagent.engines.base import SpeechEngine
from voiceagent.errors import ConfigError

__all__ = ["WORKER_ENGINES", "WorkerEngineName", "load_worker_engine"]

WorkerEngineName = Literal["cascade", "e2e", "scripted"]
WORKER_ENGINES: tuple[WorkerEngineName, ...] = ("cascade", "e2e", "scripted")


async def load_worker_engine(
    name: str,
    settings: Settings,
    *,
    reply_ms: int = 1500,
    e2e_preset: str = "tiny",
    device: str | None = None,
) -> SpeechEngine:
    """Load the engine ``name``: cascade (CPU models), e2e (speech LM, torch), scripted (tests/bench)."""
    if name == "cascade":
        from voiceagent.agents import builtin_agent_path, load_agent
        from voiceagent.engines.cascade import CascadeEngine

        agent = load_agent(settings.agent_path or builtin_agent_path())
        return await CascadeEngine.load(settings, agent)
    if name == "scripted":
        from voiceagent.memory import build_memory
        from voiceagent.worker.scripted import ScriptedWorkerConfig, ScriptedWorkerEngine

        return ScriptedWorkerEngine(ScriptedWorkerConfig(reply_ms=reply_ms), build_memory(settings))
    if name == "e2e":
        # torch is imported here only, so cascade and scripted workers start fast and small.
        from voiceagent.serving.worker_engine import build_e2e_engine

        return build_e2e_engine(e2e_preset, device=device, max_slots=settings.worker_capacity)
    raise ConfigError(f"unknown worker engine {name!r}; choose one of {', '.join(WORKER_ENGINES)}")
