"""The ``api_keys`` table: REST API keys, stored as a SHA-256 of the key, never the key itself."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from voiceagent.store.models import Base, utcnow

__all__ = ["ApiKey"]


class ApiKey(Base):
    """One API key: its public lookup prefix, the digest of the whole key, and its scopes."""

    __tablename__ = "api_keys"

    # The ``<prefix>`` of ``va_<prefix>_<secret>``: public, so a key is found without scanning hashes.
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    key_sha256: Mapped[str] = mapped_column(String(64))
    # Space-separated, as in OAuth 2 (RFC 6749 §3.3).
    scopes: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"<ApiKey {self.id} {self.name!r} [{self.scopes}]>"
