"""Intake reports, partner organisations and triage (issue 6).

A report (anmälan, referral) arrives from the public e-service or from a partner and waits in
the triage queue of the unit it was routed to. Its content is personal data: it is stored
encrypted (``EncryptedJSON``), and only a keyed blind index of the personnummer is kept in
clear so that earlier cases of the same person can be found.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.crypto import EncryptedJSON, EncryptedText
from engine.db import Base, utcnow


class PartnerOrganisation(Base):
    """A named partner that may send referrals (police contact, NGO, school, ...)."""

    __tablename__ = "partner_organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    #: police, ngo, school, health_care, housing_company
    kind: Mapped[str] = mapped_column(String(30))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PartnerToken(Base):
    """An intake token issued to a partner: known by ``jti``, refused once revoked or expired.

    The token itself is never stored; the row is the revocation list checked on every use.
    """

    __tablename__ = "partner_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partner_organisations.id"), index=True)
    jti: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class PartnerMember(Base):
    """A user account that reports on behalf of a partner (the logged-in referral form)."""

    __tablename__ = "partner_members"
    __table_args__ = (UniqueConstraint("partner_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partner_organisations.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)


class IntakeReport(Base):
    """One report waiting for (or done with) triage. Never readable by its sender."""

    __tablename__ = "intake_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: the sender's receipt number: random, not guessable, not the row id
    receipt: Mapped[str] = mapped_column(String(32), unique=True)
    #: "child" (orosanmälan) or "adult" (a person who may be exploited)
    kind: Mapped[str] = mapped_column(String(10))
    #: "public" (/anmalan), "partner_api" (POST /api/v1/intake), "partner_form" (logged in)
    channel: Mapped[str] = mapped_column(String(20))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    partner_id: Mapped[int | None] = mapped_column(
        ForeignKey("partner_organisations.id"), default=None
    )
    #: the partner's user who sent it through the logged-in form
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    #: what the sender wrote (subject, concern, reporter), encrypted at rest
    content: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON)
    personnummer_index: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    feedback_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    #: new, started, linked, no_action
    status: Mapped[str] = mapped_column(String(20), default="new", index=True)
    triaged_at: Mapped[datetime | None] = mapped_column(default=None)
    triaged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), default=None)
    outcome_reason: Mapped[str | None] = mapped_column(EncryptedText, default=None)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy protocol


class IntakeThrottle(Base):
    """Public reports counted per source address (hashed), shared by every web worker."""

    __tablename__ = "intake_throttles"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
