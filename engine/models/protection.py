"""Break-the-glass grants, their notices, security alerts for the auditor and the links from
an identity provider's accounts to local ones (issue 4)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.crypto import EncryptedText
from engine.db import Base, utcnow


class BreakGlassGrant(Base):
    """Emergency read access to one case for one user, until ``expires_at`` (time-boxed)."""

    __tablename__ = "break_glass_grants"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    #: Why the glass was broken, in the user's words (encrypted: it may name the person).
    reason: Mapped[str] = mapped_column(EncryptedText)
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    #: Set when the user ends the access before it runs out.
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    source_ip: Mapped[str | None] = mapped_column(String(64))


class BreakGlassNotice(Base):
    """Tells the case owner or a supervisor that somebody broke the glass on their case."""

    __tablename__ = "break_glass_notices"
    __table_args__ = (UniqueConstraint("grant_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    grant_id: Mapped[int] = mapped_column(
        ForeignKey("break_glass_grants.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    #: "owner" (the case's registrar) or "supervisor" (oversight of the case's unit).
    recipient_role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SecurityAlert(Base):
    """Something the auditor should look at soon: protected-identity access, break the
    glass, a mass lookup. Repeats of one kind by one user on one case within an hour are
    counted on the same alert instead of flooding the list."""

    __tablename__ = "security_alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    actor_id: Mapped[int | None] = mapped_column(Integer, index=True)
    actor_name: Mapped[str | None] = mapped_column(String(100))
    #: A plain id, not a foreign key: an alert outlives an erased case (like the access log).
    case_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_at: Mapped[datetime] = mapped_column(default=utcnow)
    count: Mapped[int] = mapped_column(Integer, default=1)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    acknowledged_at: Mapped[datetime | None] = mapped_column(default=None)


class ExternalIdentity(Base):
    """An identity provider's account (issuer + subject) linked to a local user, so a later
    change of the username claim cannot move a login to somebody else's account."""

    __tablename__ = "external_identities"
    __table_args__ = (UniqueConstraint("issuer", "subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer: Mapped[str] = mapped_column(String(300))
    subject: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)
