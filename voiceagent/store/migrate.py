"""Run the call log's Alembic migrations from Python (``voiceagent migrate``, tests, startup checks).

The sync functions suit the CLI; inside a running event loop use the ``*_async`` ones, which hand
Alembic a connection of an existing engine instead of letting ``migrations/env.py`` start a loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.util.exc import CommandError
from sqlalchemy import Connection
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from voiceagent.errors import StoreError
from voiceagent.store.engine import create_engine, display_url

__all__ = [
    "alembic_config",
    "context_options",
    "current_revision",
    "downgrade",
    "downgrade_async",
    "upgrade",
    "upgrade_async",
]


def _ini_path() -> Path:
    # migrations/ sits at the top of a source checkout, next to the package.
    env = os.environ.get("VOICEAGENT_ALEMBIC_INI")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "alembic.ini"
    if not path.is_file():
        raise StoreError(
            f"alembic.ini not found at {path}: run from a source checkout or set VOICEAGENT_ALEMBIC_INI"
        )
    return path


def alembic_config(url: str | URL | None = None) -> Config:
    """Alembic's config for our migrations; ``url`` overrides VOICEAGENT_DATABASE_URL and settings."""
    config = Config(str(_ini_path()))
    if url is not None:
        # Config values go through ConfigParser interpolation: a literal % (in a password) must double.
        rendered = url if isinstance(url, str) else url.render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    from voiceagent.store.models import UTCDateTime

    # Migrations must not import the app's types: they have to stay runnable as the app changes.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _compare_type(
    context: MigrationContext,
    inspected_column: Any,
    metadata_column: Any,
    inspected_type: Any,
    metadata_type: Any,
) -> bool | None:
    from voiceagent.store.models import UTCDateTime

    if isinstance(metadata_type, UTCDateTime) and context.dialect.name == "sqlite":
        # SQLite has no timezone-aware type: DATETIME is all it can report back. Equal enough.
        return type(inspected_type).__name__ not in {"DATETIME", "DateTime"}
    return None  # Alembic's own comparison


def context_options(connection: Connection) -> dict[str, Any]:
    """Options for ``context.configure`` and ``MigrationContext.configure`` (env.py and the tests)."""
    return {
        "render_as_batch": connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        "compare_type": _compare_type,
        "render_item": _render_item,
    }


def _in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@contextmanager
def _translated(url: str | URL | None) -> Iterator[None]:
    # The CLI prints a StoreError's message; a traceback for "connection refused" helps nobody.
    try:
        yield
    except (CommandError, SQLAlchemyError, OSError) as exc:
        where = display_url(url) if url is not None else "the configured database"
        raise StoreError(f"migration failed on {where}: {exc}") from exc


def upgrade(url: str | URL | None = None, revision: str = "head") -> None:
    """Migrate the database at ``url`` (settings' by default) up to ``revision``."""
    if _in_running_loop():
        raise StoreError("upgrade() starts its own event loop: use upgrade_async() inside one")
    with _translated(url):
        command.upgrade(alembic_config(url), revision)


def downgrade(url: str | URL | None = None, revision: str = "base") -> None:
    """Migrate the database at ``url`` down to ``revision`` (``"base"``: no call-log tables left)."""
    if _in_running_loop():
        raise StoreError("downgrade() starts its own event loop: use downgrade_async() inside one")
    with _translated(url):
        command.downgrade(alembic_config(url), revision)


async def _with_connection(engine: AsyncEngine, fn: Any, revision: str) -> None:
    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        fn(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)


async def upgrade_async(engine: AsyncEngine, revision: str = "head") -> None:
    """:func:`upgrade` on a connection of ``engine``, from inside a running event loop."""
    with _translated(engine.url):
        await _with_connection(engine, command.upgrade, revision)


async def downgrade_async(engine: AsyncEngine, revision: str = "base") -> None:
    """:func:`downgrade` on a connection of ``engine``, from inside a running event loop."""
    with _translated(engine.url):
        await _with_connection(engine, command.downgrade, revision)


async def current_revision(url: str | URL) -> str | None:
    """The revision the database at ``url`` is at (None: never migrated)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    finally:
        await engine.dispose()
