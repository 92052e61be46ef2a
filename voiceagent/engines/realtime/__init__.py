"""The realtime engine: the media layer's client of the Realtime protocol (our workers or any server)."""

from voiceagent.engines.realtime.engine import RealtimeEngine
from voiceagent.engines.realtime.session import RealtimeSession

__all__ = ["RealtimeEngine", "RealtimeSession"]
