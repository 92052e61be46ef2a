"""The media layer: turn-taking, barge-in, playout accounting, recording (DESIGN §7)."""

from voiceagent.media.playout import PlayoutQueue
from voiceagent.media.session import CallSession, TurnRecord
from voiceagent.media.timeline import CallEvent, CallTimeline
from voiceagent.media.turns import TurnDetector, TurnEvent

__all__ = [
    "CallEvent",
    "CallSession",
    "CallTimeline",
    "PlayoutQueue",
    "TurnDetector",
    "TurnEvent",
    "TurnRecord",
]
