"""The async engine for the call log: built on demand from a URL, never at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from voiceagent.errors import StoreError

__all__ = ["create_engine", "display_url", "one_transaction", "session_factory"]

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def _parse(url: str | URL) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"bad database URL: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise StoreError(f"unsupported database {backend!r}: use sqlite+aiosqlite or postgresql+asyncpg")
    # A bare sqlite:// or postgresql:// would pick a blocking driver; the call log is async only.
    if parsed.drivername in _ASYNC_DRIVERS:
        parsed = parsed.set(drivername=_ASYNC_DRIVERS[backend])
    return parsed


def display_url(url: str | URL) -> str:
    """The URL with its password hidden, for logs and error messages."""
    return make_url(url).render_as_string(hide_password=True)


def create_engine(url: str | URL, *, echo: bool = False, connect_timeout_s: float = 5.0) -> AsyncEngine:
    """An :class:`AsyncEngine` for SQLite (aiosqlite, WAL, foreign keys) or Postgres (asyncpg)."""
    parsed = _parse(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": connect_timeout_s}
    else:
        # pre_ping: after a Postgres restart, pooled connections are dead; find out before using one.
        kwargs.update(pool_pre_ping=True, connect_args={"timeout": connect_timeout_s})
    engine = create_async_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    # WAL lets the console read while the writer writes; SQLite leaves foreign keys off by default;
    # NORMAL is durable across process crashes in WAL mode, which is what the spool relies on.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit (no implicit refresh in async code)."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def one_transaction(database_url: str, what: str) -> AsyncIterator[AsyncSession]:
    """One transaction on an engine of its own, disposed on exit: for CLI commands that run outside
    the app. Database failures become :class:`StoreError` naming ``what`` (e.g. "API keys") and the
    database, since the usual cause from the command line is a database not yet migrated."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            yield session
    except (SQLAlchemyError, OSError) as exc:
        where = display_url(database_url)
        detail = getattr(exc, "orig", None) or exc  # the driver's message, without SQLAlchemy's SQL dump
        raise StoreError(f"{what} in {where}: {detail} (has `voiceagent migrate` run?)") from exc
    finally:
        await engine.dispose()
