"""Glue between a call's media layer and the call log: timeline events and turns become records.

The media layer knows nothing of databases and the store nothing of media; this module maps one
onto the other and hands records to :class:`voiceagent.store.CallLogWriter`, whose ``submit`` only
queues, so logging never holds up the 20 ms frame loop.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from voiceagent.store.records import CallEnded, CallStarted, EventRecord, RecordingRecord, TurnRecord

if TYPE_CHECKING:
    from voiceagent.config import Settings
    from voiceagent.media.session import TurnRecord as MediaTurn
    from voiceagent.media.timeline import CallEvent
    from voiceagent.store.writer import CallLogWriter

__all__ = ["CallLogSink", "open_call_log"]


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    # numpy scalars and the like sneak into event data; the log keeps plain JSON.
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in data.items()}


class CallLogSink:
    """Everything one call tells the call log, in order, through one writer."""

    def __init__(self, writer: CallLogWriter, call_id: str) -> None:
        self.writer = writer
        self.call_id = call_id
        self._seq = itertools.count()

    def started(
        self, *, channel: str, direction: str = "inbound", agent: str | None = None, **numbers: Any
    ) -> None:
        now = datetime.now(UTC)
        self.writer.submit(
            CallStarted(
                id=self.call_id,
                direction=direction,
                channel=channel,
                started_at=now,
                answered_at=now,
                agent=agent,
                from_number=numbers.get("from_number"),
                to_number=numbers.get("to_number"),
            )
        )

    def event(self, event: CallEvent) -> None:
        """Use as the timeline's listener."""
        self.writer.submit(
            EventRecord(
                call_id=self.call_id,
                seq=next(self._seq),
                kind=event.kind,
                at=datetime.now(UTC),
                media_ms=event.media_ms,
                data=_jsonable(event.data),
            )
        )

    def turns(self, turns: list[MediaTurn], played_ms: Callable[[str], float]) -> None:
        """A caller turn and the agent's answer to it, as two rows each; ``played_ms(item_id)``
        is what the playout handed to the line of an answer."""
        index = itertools.count()
        for turn in turns:
            end = turn.speech_end_ms if turn.speech_end_ms is not None else turn.speech_start_ms
            self.writer.submit(
                TurnRecord(self.call_id, next(index), "caller", turn.user_text, turn.speech_start_ms, end)
            )
            if turn.spoken_text:
                start = end + (turn.first_audio_ms or 0.0)
                heard_ms = played_ms(turn.item_id) if turn.item_id is not None else 0.0
                self.writer.submit(
                    TurnRecord(
                        self.call_id,
                        next(index),
                        "agent",
                        turn.spoken_text,
                        start,
                        start + heard_ms,
                        truncated=turn.interrupted,
                        audio_end_ms=turn.audio_end_ms,
                    )
                )

    def recording(self, uri: str, duration_s: float, leg: str = "both") -> None:
        self.writer.submit(RecordingRecord(self.call_id, leg, uri, duration_s))

    def ended(self, reason: str) -> None:
        self.writer.submit(CallEnded(call_id=self.call_id, ended_at=datetime.now(UTC), end_reason=reason))


@contextlib.asynccontextmanager
async def open_call_log(settings: Settings, *, enabled: bool = True) -> AsyncIterator[CallLogWriter | None]:
    """This process's call-log writer on ``settings.database_url`` (None when disabled).

    The embedded SQLite database is created and migrated on first use; a production database is
    migrated on purpose, with ``voiceagent migrate``.
    """
    if not enabled:
        yield None
        return
    from voiceagent.store.engine import create_engine
    from voiceagent.store.migrate import upgrade_async
    from voiceagent.store.writer import CallLogWriter

    engine = create_engine(settings.database_url)
    try:
        if engine.dialect.name == "sqlite":
            await upgrade_async(engine)
        writer = CallLogWriter(engine, spool_dir=settings.spool_dir)
        await writer.start()
        try:
            yield writer
        finally:
            await writer.aclose()
    finally:
        await engine.dispose()
