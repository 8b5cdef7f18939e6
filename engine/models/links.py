"""Links between cases, and consents recorded per purpose."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.crypto import EncryptedText
from engine.db import Base, utcnow


class CaseLink(Base):
    """One case started another (a child found during identification, ...).

    Each case keeps its own access rules: a link says the cases belong together, it gives
    nobody access to the other case.
    """

    __tablename__ = "case_links"
    __table_args__ = (UniqueConstraint("from_case_id", "to_case_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    from_case_id: Mapped[int] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), index=True
    )
    to_case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Consent(Base):
    """Consent for one purpose (domain.md §4.2): when, how, scope, and any withdrawal."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(60))
    given: Mapped[bool] = mapped_column(Boolean, default=True)
    form: Mapped[str] = mapped_column(String(20), default="oral")
    given_on: Mapped[date] = mapped_column(Date)
    scope: Mapped[str | None] = mapped_column(EncryptedText)
    interpreter_used: Mapped[bool] = mapped_column(Boolean, default=False)
    withdrawn_on: Mapped[date | None] = mapped_column(Date)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def active(self) -> bool:
        """Given and not withdrawn."""
        return self.given and self.withdrawn_on is None
