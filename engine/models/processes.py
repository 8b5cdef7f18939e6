"""Process versions: a BPMN model with its form specs, stored once per version.

A version is born as a draft in the process-owner workspace (or published directly by
``lotsen init``), is submitted, and is published by a second process owner (four eyes) or
rejected. Only published versions start cases; instances stay pinned to theirs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, utcnow

#: The life cycle of a version (stored by value).
DRAFT = "draft"
SUBMITTED = "submitted"
PUBLISHED = "published"
REJECTED = "rejected"
STATUSES = (DRAFT, SUBMITTED, PUBLISHED, REJECTED)


class ProcessVersion(Base):
    """One version of a procedure. Instances pin the version they started on."""

    __tablename__ = "process_versions"
    __table_args__ = (UniqueConstraint("process_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    process_id: Mapped[str] = mapped_column(String(100), index=True)
    number: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=PUBLISHED)
    bpmn_xml: Mapped[str] = mapped_column(Text)
    forms: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: the serialized spec; empty for a draft the checker refused
    spec_json: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: the approver of a workspace version (the second process owner), or who ran init
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    published_at: Mapped[datetime | None]
    # --- workspace (issue 5) ---
    filename: Mapped[str | None] = mapped_column(String(255))
    #: the published version this draft was edited from (None: a new procedure or an import)
    base_version_id: Mapped[int | None] = mapped_column(ForeignKey("process_versions.id"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: every user who saved this draft (four eyes: none of them may approve it)
    editor_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime | None]
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: the checker's verdict at the last save: ok and the problems (as dicts)
    check_ok: Mapped[bool] = mapped_column(Boolean, default=True)
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    submitted_at: Mapped[datetime | None]
    rejected_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    rejected_at: Mapped[datetime | None]
    rejected_reason: Mapped[str | None] = mapped_column(Text)

    @property
    def approved_by_id(self) -> int | None:
        """Who approved (published) a workspace version: the second process owner."""
        return self.published_by_id if self.status == PUBLISHED else None
