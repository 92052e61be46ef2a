"""Speech engines behind the speech-session interface: cascade (CPU default), later e2e and realtime."""

from voiceagent.engines.base import SpeechEngine, SpeechSession

__all__ = ["SpeechEngine", "SpeechSession"]
