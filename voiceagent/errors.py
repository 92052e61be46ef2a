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
    ├── LLMError                    the configured chat endpoint failed or answered nonsense
    ├── MemoryStoreError            session memory cannot be read or written (Redis down, bad data)
    └── StoreError                  the call log's database, its migrations or its spool cannot be used

Third-party exceptions are translated where they enter (``raise ... from exc``), so callers catch
these types and the CLI prints their message instead of a traceback.
"""

from __future__ import annotations

__all__ = [
    "AgentDefinitionError",
    "AudioError",
    "AudioFormatError",
    "ConfigError",
    "EngineError",
    "LLMError",
    "MemoryStoreError",
    "ModelChecksumError",
    "ModelError",
    "ModelNotFoundError",
    "StoreError",
    "VoiceAgentError",
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


class LLMError(VoiceAgentError):
    """The configured chat endpoint failed or gave an unusable answer."""


class MemoryStoreError(VoiceAgentError):
    """Session memory cannot be read or written: the store is unreachable or holds bad data."""


class StoreError(VoiceAgentError):
    """The call log's database, its migrations or its spool cannot be used."""
