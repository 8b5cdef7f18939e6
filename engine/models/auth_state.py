"""Authentication state kept on the server: revoked API tokens and login throttles."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, utcnow


class RevokedToken(Base):
    """A revoked API token, by its ``jti``; kept until the token would have expired anyway."""

    __tablename__ = "revoked_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    jti: Mapped[str] = mapped_column(String(64), unique=True)
    revoked_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    reason: Mapped[str | None] = mapped_column(String(100))


class LoginThrottle(Base):
    """Failed logins counted for one account name or one source address.

    ``key_hash`` is a SHA-256 of ``kind:key``: neither the typed username (which is sometimes
    a password typed into the wrong field) nor the address is stored in clear. Unknown
    usernames are counted exactly like real ones, so a lock tells nobody whether an account
    exists.
    """

    __tablename__ = "login_throttles"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    locked_until: Mapped[datetime | None] = mapped_column(default=None, index=True)
