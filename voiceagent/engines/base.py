"""The speech-session interface every engine implements (DESIGN §4)."""

from __future__ import annotations

from typing import Protocol

from voiceagent.engines.events import ClientEvent, ServerEvent, SessionConfig

__all__ = ["SpeechEngine", "SpeechSession"]


class SpeechSession(Protocol):
    """One call's conversation with an engine.

    ``send`` never blocks on model work: it queues or records and returns. Server events come out of
    ``recv`` in order; after ``aclose`` the session emits nothing more.
    """

    async def send(self, event: ClientEvent) -> None:
        """Deliver one client event."""

    async def recv(self) -> ServerEvent:
        """The next server event (waits for it)."""

    async def aclose(self) -> None:
        """Cancel what is running and release the session's resources."""


class SpeechEngine(Protocol):
    """Loads models once and opens sessions on them."""

    name: str

    async def open_session(self, config: SessionConfig) -> SpeechSession:
        """A new session; its first event is ``session.created``."""

    async def aclose(self) -> None:
        """Release models and threads."""
