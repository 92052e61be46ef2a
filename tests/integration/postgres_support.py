"""A scratch PostgreSQL database per test or module (127.0.0.1:5432, see scripts/services.sh).

Each database gets a random name under the caller's prefix, is created through the ``postgres``
database and dropped afterwards (WITH FORCE, so a leaked connection cannot keep it alive), so tests
never see each other's rows or schema, nor another engineer's running on the same server.
"""

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
import pytest

PG = os.environ.get("VOICEAGENT_TEST_PG", "postgres@127.0.0.1:5432")


async def admin_sql(sql: str) -> None:
    """Runs one statement in the ``postgres`` database (CREATE/DROP DATABASE cannot run in the target)."""
    conn = await asyncpg.connect(f"postgresql://{PG}/postgres", timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def postgres_up() -> bool:
    try:
        asyncio.run(admin_sql("SELECT 1"))
    except (OSError, asyncpg.PostgresError):
        return False
    return True


# Checked once, when the first Postgres test module is collected.
requires_postgres = pytest.mark.skipif(not postgres_up(), reason=f"PostgreSQL not running on {PG}")


async def create_database(prefix: str) -> str:
    """Creates an empty database named ``<prefix>_<random>`` and returns its SQLAlchemy URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await admin_sql(f'CREATE DATABASE "{name}"')
    return f"postgresql+asyncpg://{PG}/{name}"


async def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    await admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A new database's URL for a synchronous fixture; dropped on exit, whatever the test did."""
    url = asyncio.run(create_database(prefix))
    try:
        yield url
    finally:
        asyncio.run(drop_database(url))
