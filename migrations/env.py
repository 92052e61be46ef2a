"""Alembic environment for the call log: async engines, ``Base.metadata`` as the target.

The URL comes from, in order: a connection handed over in ``config.attributes["connection"]`` (the
tests and :mod:`voiceagent.store.migrate` inside a running loop), ``sqlalchemy.url`` set by the
caller, ``VOICEAGENT_DATABASE_URL``, the settings default. alembic.ini never holds one.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from voiceagent.config import load_settings
from voiceagent.store.engine import create_engine
from voiceagent.store.migrate import context_options
from voiceagent.store.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    # load_settings reads VOICEAGENT_DATABASE_URL (and the config file named by the CLI, if any).
    return config.get_main_option("sqlalchemy.url") or load_settings().database_url


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, **context_options(connection))
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade --sql``) instead of running it."""
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_async())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
