"""Retention (gallring): erasure records, anonymous statistics kept after erasure, legal holds.

None of these rows holds personal data: an erased case is remembered by its number and dates
only, and the statistics are counts per procedure, unit, year and outcome.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, utcnow


class ErasureRecord(Base):
    """One erased case (gallrat ärende): what was erased, when, under which rule.

    Mirrored line by line in the erasure ledger file outside the database
    (:mod:`engine.retention`), so a restore of an older backup can erase the case again.
    ``case_id`` has no foreign key: the case row itself is gone.
    """

    __tablename__ = "erasure_records"
    __table_args__ = (UniqueConstraint("case_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(Integer, index=True)
    case_number: Mapped[str] = mapped_column(String(40))
    procedure: Mapped[str] = mapped_column(String(100))
    rule: Mapped[str] = mapped_column(String(100))
    last_entry_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date)
    erased_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: "retention" (a run of the policy) or "reapply" (re-applied from the ledger after a restore)
    source: Mapped[str] = mapped_column(String(20), default="retention")
    run_id: Mapped[str] = mapped_column(String(40))


class RetentionStatistic(Base):
    """Anonymous counts that outlive the erased cases (procedure, unit, year, outcome)."""

    __tablename__ = "retention_statistics"
    __table_args__ = (UniqueConstraint("procedure", "unit_key", "year", "measure", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    procedure: Mapped[str] = mapped_column(String(100))
    unit_key: Mapped[str] = mapped_column(String(64))
    #: the year the case was received
    year: Mapped[int] = mapped_column(Integer)
    #: "cases" (value "") or "decision" (value "<decision type>:<outcome>")
    measure: Mapped[str] = mapped_column(String(30))
    value: Mapped[str] = mapped_column(String(200), default="")
    count: Mapped[int] = mapped_column(Integer, default=0)


class RetentionHold(Base):
    """A legal hold (e.g. a pending appeal or a request from a court): never erase this case."""

    __tablename__ = "retention_holds"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(Integer, index=True, unique=True)
    reason: Mapped[str] = mapped_column(String(200))
    placed_by: Mapped[str] = mapped_column(String(100))
    placed_at: Mapped[datetime] = mapped_column(default=utcnow)
