"""Outgoing documents of domain.md §10 (letters and records) as PDF/A from plain data.

Framework-free like the rest of reports/: the caller (webapp) turns the engine's letter
data into an :class:`OutgoingDocument`. Each kind has its own template under
``templates/outgoing/`` that extends ``outgoing/base.html`` and reads named facts only,
so a fact the engine did not hand over cannot appear. Values are autoescaped data in the
sandbox (``{{7*7}}`` stays text) and the asset-only fetcher refuses every URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType

from reports.render import MAX_TEXT_CHARS, format_local, render_html, render_pdf

#: The kinds with a template (outgoing/<kind>.html).
KINDS = frozenset(
    {
        "protection_assessment",
        "lvu6_decision",
        "lvu_care_application",
        "guardian_notice",
        "police_report",
        "housing_notice",
        "referral",
        "reflection_application",
        "reporter_feedback",
        "closure_note",
    }
)


@dataclass(frozen=True, slots=True)
class LegalRefText:
    """A legal reference as printed: its name and the citation valid on the date."""

    label: str
    citation: str


@dataclass(frozen=True, slots=True)
class OutgoingDocument:
    """Everything printed on one outgoing document; ``facts`` are named, pre-worded values."""

    kind: str
    title: str
    municipality: str
    authority: str
    unit_name: str
    case_number: str
    issued_on: date
    recipient: str
    subject_label: str
    protected_identity: bool
    contact_person: str
    legal_refs: tuple[LegalRefText, ...] = ()
    facts: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    awaiting_approval: bool = False
    approved_by: str = ""
    approved_at: datetime | None = None
    lang: str = "sv"


def _check(doc: OutgoingDocument) -> None:
    if doc.kind not in KINDS:
        raise ValueError(f"unknown document kind: {doc.kind!r}")
    if doc.approved_at is not None:
        format_local(doc.approved_at)
    texts = [doc.title, doc.recipient, doc.subject_label, doc.contact_person, doc.unit_name]
    texts += [*doc.facts.values(), *(r.label + r.citation for r in doc.legal_refs)]
    if sum(len(t) for t in texts) > MAX_TEXT_CHARS:
        raise ValueError(f"document text exceeds {MAX_TEXT_CHARS} characters")


def _context(doc: OutgoingDocument) -> dict[str, object]:
    _check(doc)
    return {"doc": doc, "f": doc.facts}


def render_outgoing_html(doc: OutgoingDocument) -> str:
    """The document as standalone HTML."""
    return render_html(f"outgoing/{doc.kind}.html", _context(doc))


def render_outgoing_pdf(doc: OutgoingDocument) -> bytes:
    """The document as PDF/A bytes (A4)."""
    return render_pdf(f"outgoing/{doc.kind}.html", _context(doc))


__all__ = [
    "KINDS",
    "LegalRefText",
    "OutgoingDocument",
    "render_outgoing_html",
    "render_outgoing_pdf",
]
