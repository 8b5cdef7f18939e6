"""Cases (ärenden), their team, subjects and journal."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.crypto import EncryptedText
from engine.db import Base, utcnow


class Case(Base):
    """A case: one procedure run for one unit, with its secrecy class and status."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    procedure: Mapped[str] = mapped_column(String(100))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    status: Mapped[str] = mapped_column(String(30), default="Active")
    secrecy_class: Mapped[str] = mapped_column(String(30), default="SOCIAL_26_1")
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]

    subjects: Mapped[list[Subject]] = relationship(
        back_populates="case", cascade="all, delete-orphan", lazy="selectin"
    )
    members: Mapped[list[CaseMember]] = relationship(
        back_populates="case", cascade="all, delete-orphan", lazy="selectin"
    )


class CaseMember(Base):
    """A person on the case team (creator, assignee, named staff)."""

    __tablename__ = "case_members"
    __table_args__ = (UniqueConstraint("case_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(String(50))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)

    case: Mapped[Case] = relationship(back_populates="members")


class Subject(Base):
    """A person the case is about. Identity fields are encrypted at rest."""

    __tablename__ = "subjects"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(30), default="presumed_victim")
    name: Mapped[str | None] = mapped_column(EncryptedText)
    alias: Mapped[str | None] = mapped_column(EncryptedText)
    personnummer: Mapped[str | None] = mapped_column(EncryptedText)
    personnummer_index: Mapped[str | None] = mapped_column(String(64), index=True)
    birth_date: Mapped[str | None] = mapped_column(EncryptedText)
    estimated_age: Mapped[int | None] = mapped_column(Integer)
    age_doubt: Mapped[bool] = mapped_column(Boolean, default=False)
    gender: Mapped[str | None] = mapped_column(String(30))
    citizenship: Mapped[str | None] = mapped_column(String(60))
    protected_identity_type: Mapped[str] = mapped_column(String(40), default="none")

    case: Mapped[Case] = relationship(back_populates="subjects")

    @property
    def is_protected(self) -> bool:
        """True when the person has any kind of protected identity."""
        return self.protected_identity_type not in ("", "none")


class JournalNote(Base):
    """A journal entry (journalanteckning) for a material step or decision."""

    __tablename__ = "journal_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    event_date: Mapped[date | None] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(30), default="step")
    title: Mapped[str] = mapped_column(String(300))
    text: Mapped[str | None] = mapped_column(EncryptedText)
    task_bpmn_id: Mapped[str | None] = mapped_column(String(100))
