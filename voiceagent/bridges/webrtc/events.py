"""Live call events for the call page, sent as JSON text over the peer's data channel.

The page's messages, one JSON object each, ``type`` first:

- ``{"type": "call", "state": "connected" | "ended", "call_id", "reason"?}``
- ``{"type": "speech", "state": "started" | "stopped"}``: the caller's voice, as the VAD hears it
- ``{"type": "user", "turn", "text"}``: what the caller said in a turn
- ``{"type": "agent", "turn", "text", "final"}``: the answer's text so far (``final``: all of it that
  was heard)
- ``{"type": "latency", "turn", "first_audio_ms"}``: end of the caller's turn → first agent audio
"""

from __future__ import annotations

import json
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from voiceagent.media.timeline import CallEvent

if TYPE_CHECKING:
    from aiortc import RTCDataChannel

    from voiceagent.media.session import CallSession, TurnRecord

__all__ = ["CallEventChannel", "page_events"]

logger = logging.getLogger(__name__)

# Messages kept while the page's channel is not open yet; older ones are dropped first.
_PENDING_MAX = 256


def page_events(event: CallEvent, session: CallSession | None) -> list[dict[str, Any]]:
    """What the page is told about one timeline event (nothing for most)."""
    data = event.data
    turns = session.turns if session is not None else []
    turn = _turn(turns, data.get("turn"))
    match event.kind:
        case "speech_started":
            return [{"type": "speech", "state": "started"}]
        case "speech_stopped":
            return [{"type": "speech", "state": "stopped"}]
        case "transcript" if turns:
            last = turns[-1]
            return [{"type": "user", "turn": last.index, "text": last.user_text}]
        case "agent_audio_started" if turn is not None:
            return [
                {
                    "type": "agent",
                    "turn": turn.index,
                    "text": turn.reply_text.strip(),
                    # The engine may be done before the audio starts (an answer prepared early).
                    "final": turn.status not in ("thinking", "speaking"),
                },
                {"type": "latency", "turn": turn.index, "first_audio_ms": data.get("first_audio_ms")},
            ]
        case "response_done":
            done = next((t for t in turns if t.response_id == data.get("response_id")), None)
            if done is None:
                return []
            return [{"type": "agent", "turn": done.index, "text": done.spoken_text, "final": True}]
        case "call_ended":
            return [{"type": "call", "state": "ended", "reason": data.get("reason")}]
        case _:
            return []


def _turn(turns: list[TurnRecord], index: Any) -> TurnRecord | None:
    if isinstance(index, int) and 0 <= index < len(turns):
        return turns[index]
    return None


class CallEventChannel:
    """Turns a call's timeline into page messages; queues them until the page's channel opens.

    Use :meth:`on_event` as the timeline's listener: it only encodes and queues (the media path
    must not wait).
    """

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self.session: CallSession | None = None
        self.sent: list[dict[str, Any]] = []
        self._channel: RTCDataChannel | None = None
        self._pending: deque[str] = deque(maxlen=_PENDING_MAX)

    def attach(self, channel: RTCDataChannel) -> None:
        """Send through ``channel`` from now on (and what was queued, once it is open)."""
        self._channel = channel
        if channel.readyState == "open":
            self._flush()
        else:
            channel.add_listener("open", self._flush)

    def on_event(self, event: CallEvent) -> None:
        for message in page_events(event, self.session):
            self.send(message)

    def send(self, message: dict[str, Any]) -> None:
        message.setdefault("call_id", self.call_id)
        self.sent.append(message)
        self._pending.append(json.dumps(message))
        self._flush()

    def _flush(self) -> None:
        channel = self._channel
        if channel is None or channel.readyState != "open":
            return
        while self._pending:
            try:
                channel.send(self._pending.popleft())
            except Exception:  # a channel closing under us: the page is gone, so is the message
                logger.debug("data channel send failed", extra={"call_id": self.call_id}, exc_info=True)
                return
