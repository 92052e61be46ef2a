"""The one exception tree of voiceagent.

    VoiceAgentError
    ├── ConfigError                 bad settings or an unreadable config file
    ├── AudioError                  audio that cannot be used
    │   └── AudioFormatError        not a readable audio file, or a format we refuse
    ├── ModelError                  a speech model cannot be used
    │   ├── ModelNotFoundError      not installed, or the given path does not exist
    │   └── ModelChecksumError      a model file whose sha256 is not the pinned one
    ├── AgentDefinitionError        an agent file that does not parse or validate
    ├── EngineError                 a speech engine failed during a session
    │   ├── ProtocolError           a speech-session message that is not valid JSON or not an event
    │   └── NoWorkerError           no model worker could take the call (all full, draining or down)
    ├── LLMError                    the configured chat endpoint failed or answered nonsense
    ├── MemoryStoreError            session memory cannot be read or written (Redis down, bad data)
    ├── StoreError                  the call log's database, its migrations or its spool cannot be used
    ├── ConsoleAuthError            a console login that failed, or an admin that cannot be made
    ├── LiveCallError               no such live call, or an action it does not support (transfer)
    ├── WebhookError                a webhook endpoint or delivery request that cannot be served
    ├── ToolCallError               an agent's tool call (integrator HTTP endpoint) failed or timed out
    ├── SipEdgeError                the SIP edge (Kamailio) cannot be configured, started or kept up
    └── SipError                    a pjsua2 media process cannot start, or a SIP call cannot be made

Third-party exceptions are translated where they enter (``raise ... from exc``), so callers catch
these types and the CLI prints their message instead of a traceback.
"""

from __future__ import annotations

__all__ = [
    "AgentDefinitionError",
    "AudioError",
    "AudioFormatError",
    "ConfigError",
    "ConsoleAuthError",
    "EngineError",
    "LLMError",
    "LiveCallError",
    "MemoryStoreError",
    "ModelChecksumError",
    "ModelError",
    "ModelNotFoundError",
    "NoWorkerError",
    "ProtocolError",
    "SipEdgeError",
    "SipError",
    "StoreError",
    "ToolCallError",
    "VoiceAgentError",
    "WebhookError",
]


class VoiceAgentError(Exception):
    """Base of every error voiceagent raises on purpose."""


class ConfigError(VoiceAgentError):
    """Settings that cannot be used."""


class AudioError(VoiceAgentError):
    """Audio that cannot be used."""


class AudioFormatError(AudioError):
    """A file that is not readable audio, or audio in a format we do not accept."""


class ModelError(VoiceAgentError):
    """A speech model that cannot be loaded."""


class ModelNotFoundError(ModelError):
    """The model's package is not installed, or the given path does not exist."""


class ModelChecksumError(ModelError):
    """A model file whose sha256 differs from the pinned one."""


class AgentDefinitionError(VoiceAgentError):
    """An agent definition file that does not parse or validate."""


class EngineError(VoiceAgentError):
    """A speech engine failed during a session."""


class ProtocolError(EngineError):
    """A speech-session message (JSON over WebSocket) that does not parse or is not a known event."""


class NoWorkerError(EngineError):
    """No model worker could take the call: every worker is full, draining or unreachable."""


class LLMError(VoiceAgentError):
    """The configured chat endpoint failed or gave an unusable answer."""


class MemoryStoreError(VoiceAgentError):
    """Session memory cannot be read or written: the store is unreachable or holds bad data."""


class StoreError(VoiceAgentError):
    """The call log's database, its migrations or its spool cannot be used."""


class ConsoleAuthError(VoiceAgentError):
    """A console login that failed, or an admin that cannot be made (bad email, taken, weak password)."""


class LiveCallError(VoiceAgentError):
    """No such live call, or an action the call's bridge does not support (transfer on WebRTC)."""


class WebhookError(VoiceAgentError):
    """A webhook endpoint or delivery request that cannot be served: bad URL, unknown event type."""


class ToolCallError(VoiceAgentError):
    """An agent's tool call failed: the integrator's endpoint timed out, refused or answered nonsense."""


class SipEdgeError(VoiceAgentError):
    """The SIP edge (Kamailio) cannot be configured, started or kept running."""


class SipError(VoiceAgentError):
    """The SIP media side failed: pjsua2 cannot start or a call cannot be placed, found or changed."""
