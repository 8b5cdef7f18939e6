"""Decisions: proposed by a caseworker, approved or returned by a supervisor."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.crypto import EncryptedText
from engine.db import Base, utcnow


class Decision(Base):
    """One proposal of a decision and what became of it (four-eyes control)."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"))
    decision_type: Mapped[str] = mapped_column(String(30))
    outcome: Mapped[str] = mapped_column(String(80))
    detail: Mapped[str | None] = mapped_column(String(80))
    reasons: Mapped[str] = mapped_column(EncryptedText)
    legal_refs: Mapped[str] = mapped_column(String(500), default="")
    appealable: Mapped[bool] = mapped_column(Boolean, default=False)
    proposal_task_id: Mapped[str] = mapped_column(String(36))
    proposed_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    proposed_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(20), default="proposed", index=True)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None]
    comment: Mapped[str | None] = mapped_column(EncryptedText)
