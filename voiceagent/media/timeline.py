"""Every decision of a call as a timestamped event (DESIGN §7)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["CallEvent", "CallTimeline"]


@dataclass(frozen=True)
class CallEvent:
    """``media_ms``: position on the call's media clock; ``monotonic_s``: when it was decided."""

    kind: str
    media_ms: float
    monotonic_s: float
    data: dict[str, Any] = field(default_factory=dict)


class CallTimeline:
    """Append-only, monotonic list of a call's events.

    ``listener`` sees every event as it is added, on the media path: it must return at once (the
    call log's writer only queues it).
    """

    def __init__(self, listener: Callable[[CallEvent], None] | None = None) -> None:
        self.events: list[CallEvent] = []
        self.listener = listener

    def add(self, kind: str, media_ms: float, **data: Any) -> CallEvent:
        event = CallEvent(kind, round(media_ms, 1), time.monotonic(), data)
        self.events.append(event)
        if self.listener is not None:
            self.listener(event)
        return event

    def of_kind(self, kind: str) -> list[CallEvent]:
        return [e for e in self.events if e.kind == kind]

    def as_dicts(self) -> list[dict[str, Any]]:
        return [asdict(e) for e in self.events]
