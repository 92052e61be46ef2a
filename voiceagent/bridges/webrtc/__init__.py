"""Browser calls over WebRTC (aiortc): peer connections, the audio tracks, signaling and the call page.

Mount :func:`webrtc_router` on a FastAPI app with a :class:`WebRTCService`; the service owns the
live calls and must be closed (:meth:`WebRTCService.aclose`) when the app stops.
"""

from voiceagent.bridges.webrtc.audio import FramePacer, InboundAudio, OutboundAudio, downmix
from voiceagent.bridges.webrtc.call import WebRTCCall
from voiceagent.bridges.webrtc.routes import webrtc_router
from voiceagent.bridges.webrtc.service import (
    CallLimitError,
    CallNotFoundError,
    OfferError,
    RenegotiationError,
    WebRTCAnswer,
    WebRTCConfig,
    WebRTCError,
    WebRTCService,
    check_offer,
)
from voiceagent.bridges.webrtc.tracks import AgentAudioTrack, consume_inbound

__all__ = [
    "AgentAudioTrack",
    "CallLimitError",
    "CallNotFoundError",
    "FramePacer",
    "InboundAudio",
    "OfferError",
    "OutboundAudio",
    "RenegotiationError",
    "WebRTCAnswer",
    "WebRTCCall",
    "WebRTCConfig",
    "WebRTCError",
    "WebRTCService",
    "check_offer",
    "consume_inbound",
    "downmix",
    "webrtc_router",
]
