"""Documents kept in the case record (decision PDFs and outgoing letters), hashed on creation."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, deferred, mapped_column

from engine.db import Base, utcnow

#: Document states. ``final``: usable as soon as it is filed (internal records, letters of
#: unprotected cases). ``awaiting_approval``: an outgoing document of a case with a protected
#: identity; only the unit manager may read it until approved. ``approved``: released.
FINAL = "final"
AWAITING_APPROVAL = "awaiting_approval"
APPROVED = "approved"
RELEASED = frozenset({FINAL, APPROVED})


class Document(Base):
    """A generated document. The bytes never live under a guessable static URL.

    While a document awaits approval its bytes are kept in ``draft_content`` and
    ``content`` stays empty, so no download path can hand it out before the unit manager
    has approved it (domain.md §4.1).
    """

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id"))
    kind: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(300))
    filename: Mapped[str] = mapped_column(String(200))
    media_type: Mapped[str] = mapped_column(String(100), default="application/pdf")
    content: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int]
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(30), default=FINAL, server_default=FINAL)
    draft_content: Mapped[bytes | None] = deferred(mapped_column(LargeBinary, nullable=True))
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_at: Mapped[datetime | None]

    @property
    def released(self) -> bool:
        """May be downloaded or sent (no approval pending)."""
        return self.status in RELEASED
