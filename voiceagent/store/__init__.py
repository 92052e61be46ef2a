"""The call log: SQLAlchemy models, repository functions, the async engine and the batching writer.

SQLite by default, Postgres in production; the schema is managed by Alembic (``migrations/``).
"""

from voiceagent.store.engine import create_engine, session_factory
from voiceagent.store.records import (
    CallEnded,
    CallStarted,
    EventRecord,
    LogRecord,
    RecordingRecord,
    TurnRecord,
)
from voiceagent.store.writer import CallLogWriter, WriterStats

__all__ = [
    "CallEnded",
    "CallLogWriter",
    "CallStarted",
    "EventRecord",
    "LogRecord",
    "RecordingRecord",
    "TurnRecord",
    "WriterStats",
    "create_engine",
    "session_factory",
]
