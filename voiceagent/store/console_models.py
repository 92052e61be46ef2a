"""The console's tables: admins (argon2 password hashes) and server-side login sessions.

A session row is keyed by the SHA-256 of the random token in the cookie, so a leaked database dump
holds no usable cookie, and logging out (or disabling an admin) ends the session on the server.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from voiceagent.store.models import Base, utcnow

__all__ = ["ROLES", "Admin", "ConsoleSession"]

ROLES = ("admin", "viewer")


class Admin(Base):
    """Someone who may log in to the console: ``admin`` changes things, ``viewer`` only looks."""

    __tablename__ = "admins"
    __table_args__ = (CheckConstraint("role IN ('admin', 'viewer')", name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"<Admin {self.id} {self.email} {self.role}>"


class ConsoleSession(Base):
    """One logged-in browser: the token's digest, whose it is, its CSRF token and when it expires."""

    __tablename__ = "console_sessions"
    __table_args__ = (Index("ix_console_sessions_expires_at", "expires_at"),)

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    admin_id: Mapped[int] = mapped_column(ForeignKey("admins.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
