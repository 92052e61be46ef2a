"""Console admins from the command line: what ``voiceagent admin ...`` calls.

Each function opens the database from settings, does one thing in one transaction and closes the
engine. The embedded SQLite database is migrated first (as the call log does on first use), so the
first admin can be made before the server has ever run; a production database is migrated on
purpose, with ``voiceagent migrate``.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from voiceagent.config import Settings
from voiceagent.console.admins import create_admin
from voiceagent.errors import StoreError
from voiceagent.store import create_engine, session_factory
from voiceagent.store.console_models import Admin
from voiceagent.store.engine import display_url
from voiceagent.store.migrate import upgrade_async

__all__ = ["add_admin", "list_admins"]


async def add_admin(settings: Settings, *, email: str, password: str, role: str) -> Admin:
    """Store a new admin; :class:`~voiceagent.errors.ConsoleAuthError` if it cannot be made."""
    engine = create_engine(settings.database_url)
    try:
        if engine.dialect.name == "sqlite":
            await upgrade_async(engine)
        async with session_factory(engine)() as session, session.begin():
            return await create_admin(session, email=email, password=password, role=role)
    except (SQLAlchemyError, OSError) as exc:
        detail = getattr(exc, "orig", None) or exc
        where = display_url(settings.database_url)
        raise StoreError(f"admins in {where}: {detail} (has `voiceagent migrate` run?)") from exc
    finally:
        await engine.dispose()


async def list_admins(settings: Settings) -> list[Admin]:
    """Every admin, oldest first."""
    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine)() as session:
            return list((await session.scalars(select(Admin).order_by(Admin.id))).all())
    except (SQLAlchemyError, OSError) as exc:
        detail = getattr(exc, "orig", None) or exc
        where = display_url(settings.database_url)
        raise StoreError(f"admins in {where}: {detail} (has `voiceagent migrate` run?)") from exc
    finally:
        await engine.dispose()
