"""E-mail notifications and opt-outs (issue 6).

The outbox holds one row per (task, kind, recipient): the unique constraint is what makes a
notification go out exactly once however many workers sweep at the same time. A row carries
no message text: the mail is rendered when it is sent, from the task and case rows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, utcnow


class NotificationOutbox(Base):
    """A notification to send (or sent, or skipped) to one user about one task."""

    __tablename__ = "notification_outbox"
    __table_args__ = (UniqueConstraint("task_id", "kind", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: ``assigned``, ``due_soon`` or ``overdue`` (engine.notifications.Kind)
    kind: Mapped[str] = mapped_column(String(20))
    #: ``pending`` until sent; ``skipped`` when it became pointless (task closed, no address)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    #: The sending worker's lease: a claim whose lease has run out is free again.
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None]
    #: The exception class of the last failed attempt (never a message or address).
    last_error: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class NotificationOptOut(Base):
    """A user who does not want e-mail of one kind (statutory deadlines are sent anyway)."""

    __tablename__ = "notification_opt_outs"
    __table_args__ = (UniqueConstraint("user_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
