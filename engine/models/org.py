"""Organisation: units, staff accounts and their role assignments."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.crypto import EncryptedText
from engine.db import Base, utcnow


class Unit(Base):
    """An organisational unit (enhet) that owns cases, e.g. Vuxenenheten."""

    __tablename__ = "units"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))


class User(Base):
    """A staff or partner account. Passwords are argon2id hashes, never plain text."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    password_hash: Mapped[str | None] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: When an administrator disabled the account (None while it is usable).
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)
    #: API tokens issued at or before this moment are refused (set when the account is disabled).
    tokens_revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    #: The TOTP (RFC 6238) secret, base32, encrypted at rest; None = no second factor enrolled.
    totp_secret: Mapped[str | None] = mapped_column(EncryptedText, default=None)
    #: The last accepted TOTP time step: a code is never accepted twice (no replay).
    totp_last_step: Mapped[int | None] = mapped_column(Integer, default=None)
    totp_enrolled_at: Mapped[datetime | None] = mapped_column(default=None)

    roles: Mapped[list[RoleAssignment]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )


class RoleAssignment(Base):
    """A role a user holds, for one unit or (unit_id NULL) for every unit."""

    __tablename__ = "role_assignments"
    __table_args__ = (UniqueConstraint("user_id", "role", "unit_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(50))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))

    user: Mapped[User] = relationship(back_populates="roles")
    unit: Mapped[Unit | None] = relationship(lazy="joined")
