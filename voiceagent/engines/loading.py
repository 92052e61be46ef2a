"""The engine a media process uses, chosen by ``settings.engine``; heavy imports only for the one chosen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from voiceagent.engines.base import SpeechEngine

if TYPE_CHECKING:
    from voiceagent.agents import AgentDefinition
    from voiceagent.config import Settings

__all__ = ["load_engine"]


async def load_engine(settings: Settings, agent: AgentDefinition) -> SpeechEngine:
    """cascade: CPU models here; realtime: a worker (realtime_url or the pool); e2e: the speech LM here."""
    if settings.engine == "realtime":
        from voiceagent.engines.realtime import RealtimeEngine

        return RealtimeEngine.from_settings(settings)
    if settings.engine == "e2e":
        from voiceagent.serving.worker_engine import build_e2e_engine

        return build_e2e_engine()
    from voiceagent.engines.cascade import CascadeEngine

    return await CascadeEngine.load(settings, agent)
