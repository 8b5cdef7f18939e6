"""Plain data the web layer fills in before a decision document is rendered.

Why: reports/ must not know about the ORM, Flask or the access layer. The caller
(webapp) has already applied access control and protected-identity rules; it passes
only what may be printed. Nothing here is a template: every string is shown as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class LegalRefLine:
    """One legal reference from the versioned catalogue, as it applies on the decision date."""

    key: str
    label: str
    citation: str


@dataclass(frozen=True, slots=True)
class ReturnNote:
    """A supervisor sent the proposal back for revision (återremiss)."""

    by: str
    at: datetime
    comment: str


@dataclass(frozen=True, slots=True)
class DecisionDocument:
    """Everything printed on a decision or assessment record (e.g. D-A6 bedömning).

    Datetimes must be timezone-aware (they are shown in Europe/Stockholm local time).
    ``subject_label`` is the name, or "Skyddad identitet" when the caller has decided
    the identity is protected; no address field exists on purpose.
    ``approved_by``/``approved_at`` None means the proposal is not yet decided and the
    document is printed as a draft.
    """

    municipality: str
    authority: str
    unit_name: str
    case_number: str
    procedure_label: str
    decision_code: str
    decision_label: str
    outcome_code: str
    outcome_label: str
    reasons: str
    legal_refs: tuple[LegalRefLine, ...]
    proposed_by: str
    proposed_at: datetime
    approved_by: str | None
    approved_at: datetime | None
    appealable: bool
    appeal_info: str
    subject_label: str
    protected_identity: bool
    document_id: str
    lang: str = "sv"
    return_history: tuple[ReturnNote, ...] = ()
    # Optional extras an assessment record usually carries.
    outcome_detail: str = ""
    """Specification of the outcome, e.g. the exploitation purpose for 4 kap. 1 a § BrB."""
    delegation_ref: str = ""
    """Point in the delegation order (delegationsordning) under which the approver decided."""
    linked_case_numbers: tuple[str, ...] = ()
    """Linked cases, e.g. a child-safeguarding case spawned from an identification."""
    printed_at: datetime | None = None
    """When the document was produced; shown as "Utskrivet" when given."""

    @property
    def is_draft(self) -> bool:
        """A proposal without an approver and approval time is not a decision."""
        return self.approved_by is None or self.approved_at is None
