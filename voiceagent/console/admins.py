"""Console admins and their login sessions. Keyword-only; none of them commits.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's second recommended set):
unlike API keys, a password is low-entropy, so a slow, memory-hard hash is what protects it.
A session is a random token in a cookie; the table keeps its SHA-256 and a CSRF token of its own.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from voiceagent.errors import ConsoleAuthError
from voiceagent.store.console_models import ROLES, Admin, ConsoleSession
from voiceagent.store.models import utcnow

__all__ = [
    "MIN_PASSWORD_CHARS",
    "LoggedIn",
    "authenticate_admin",
    "create_admin",
    "end_session",
    "find_session",
    "start_session",
]

MIN_PASSWORD_CHARS = 10
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}$")
_hasher = PasswordHasher()
# Verifying against this when the email is unknown costs the same time as a wrong password, so
# the response time does not tell which emails are admins.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """A valid session: who it is, their role, and the session's CSRF token."""

    admin_id: int
    email: str
    role: str
    csrf_token: str

    @property
    def can_change(self) -> bool:
        return self.role == "admin"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_admin(session: AsyncSession, *, email: str, password: str, role: str) -> Admin:
    """Store a new admin; :class:`ConsoleAuthError` for a bad email, role, weak password or a taken email."""
    email = email.strip().lower()
    if not _EMAIL_RE.fullmatch(email):
        raise ConsoleAuthError(f"not an email address: {email!r}")
    if role not in ROLES:
        raise ConsoleAuthError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if len(password) < MIN_PASSWORD_CHARS:
        raise ConsoleAuthError(f"the password needs at least {MIN_PASSWORD_CHARS} characters")
    taken = await session.scalar(select(func.count()).select_from(Admin).where(Admin.email == email))
    if taken:
        raise ConsoleAuthError(f"an admin {email!r} already exists")
    admin = Admin(email=email, password_hash=_hasher.hash(password), role=role, created_at=utcnow())
    session.add(admin)
    await session.flush()
    return admin


async def authenticate_admin(session: AsyncSession, *, email: str, password: str) -> Admin | None:
    """The admin if ``password`` is theirs and they are not disabled; None otherwise."""
    admin = await session.scalar(select(Admin).where(Admin.email == email.strip().lower()))
    try:
        _hasher.verify(admin.password_hash if admin is not None else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if admin is None or admin.disabled_at is not None:
        return None
    if _hasher.check_needs_rehash(admin.password_hash):
        admin.password_hash = _hasher.hash(password)  # parameters were raised since it was stored
    return admin


async def start_session(session: AsyncSession, *, admin: Admin, ttl_s: float) -> tuple[str, str]:
    """A new login for ``admin``: returns (cookie token, CSRF token). Expired sessions are swept."""
    now = utcnow()
    await session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.add(
        ConsoleSession(
            token_sha256=_digest(token),
            admin_id=admin.id,
            csrf_token=csrf,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
        )
    )
    await session.flush()
    return token, csrf


async def find_session(session: AsyncSession, *, token: str) -> LoggedIn | None:
    """The login this cookie token stands for, if it is unexpired and its admin is enabled."""
    if not token or len(token) > 128:
        return None
    row = await session.execute(
        select(ConsoleSession.csrf_token, Admin.id, Admin.email, Admin.role)
        .join(Admin, Admin.id == ConsoleSession.admin_id)
        .where(
            ConsoleSession.token_sha256 == _digest(token),
            ConsoleSession.expires_at > utcnow(),
            Admin.disabled_at.is_(None),
        )
    )
    found = row.first()
    if found is None:
        return None
    csrf, admin_id, email, role = found
    return LoggedIn(admin_id=admin_id, email=email, role=role, csrf_token=csrf)


async def end_session(session: AsyncSession, *, token: str) -> None:
    """Log out: the session row goes, so the cookie is worthless even if it was copied."""
    await session.execute(delete(ConsoleSession).where(ConsoleSession.token_sha256 == _digest(token)))
