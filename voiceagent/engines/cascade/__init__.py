"""The CPU default engine: VAD-endpointed turns → Whisper → agent brain → hibari TTS."""

from voiceagent.engines.cascade.engine import CascadeEngine
from voiceagent.engines.cascade.session import CascadeSession

__all__ = ["CascadeEngine", "CascadeSession"]
