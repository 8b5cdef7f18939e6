"""Log follow-up (logguppföljning): a drawn sample of access-log entries and the findings.

A review covers a period; its items point at audit entries by sequence number (no foreign
key, so that the gallring of old log segments is not blocked by a review; the review keeps
the action, the case and the time of the sampled entry). Comments may name people, so they
are encrypted at rest like journal text.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.crypto import EncryptedText
from engine.db import Base, utcnow


class LogReview(Base):
    """One sample check of the access log for a period, drawn by an auditor."""

    __tablename__ = "log_reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    random_size: Mapped[int] = mapped_column(Integer)

    items: Mapped[list[LogReviewItem]] = relationship(
        back_populates="review",
        cascade="all, delete-orphan",
        order_by="LogReviewItem.audit_seq.desc()",
    )


class LogReviewItem(Base):
    """One sampled entry, why it is in the sample, and the auditor's finding."""

    __tablename__ = "log_review_items"
    __table_args__ = (UniqueConstraint("review_id", "audit_seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    review_id: Mapped[int] = mapped_column(
        ForeignKey("log_reviews.id", ondelete="CASCADE"), index=True
    )
    audit_seq: Mapped[int] = mapped_column(Integer, index=True)
    #: "random", "protected", "denied" or "break_glass"
    reason: Mapped[str] = mapped_column(String(20))
    #: None until reviewed; then "ok", "follow_up" or "incident"
    finding: Mapped[str | None] = mapped_column(String(20))
    comment: Mapped[str | None] = mapped_column(EncryptedText)
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None]

    review: Mapped[LogReview] = relationship(back_populates="items")
