"""The media layer: turn-taking, barge-in, playout accounting, recording (DESIGN §7)."""

from voiceagent.media.bargein import BargeInDetector, BargeInVerdict, SnippetTranscript
from voiceagent.media.echo import EchoGuard
from voiceagent.media.playout import PlayoutQueue
from voiceagent.media.session import CallSession, TurnRecord
from voiceagent.media.timeline import CallEvent, CallTimeline
from voiceagent.media.turns import EndOfTurn, TurnDetector, TurnEvent

__all__ = [
    "BargeInDetector",
    "BargeInVerdict",
    "CallEvent",
    "CallSession",
    "CallTimeline",
    "EchoGuard",
    "EndOfTurn",
    "PlayoutQueue",
    "SnippetTranscript",
    "TurnDetector",
    "TurnEvent",
    "TurnRecord",
]
