"""Outgoing documents of domain.md §10: which exist for a case, what they say, approval.

Why here: what a letter may disclose is a business rule, not layout. Each kind
(``engine.document_kinds``) picks the few facts it needs from the case record by name, so
nothing else can leak into it: the housing company's letter gets property facts only, no
document ever gets a person's address or whereabouts, the guardian notice is refused when
a guardian is suspected of involvement, and a police report exists only when the
disclosure gate of its step passes (``actions._check_disclosure``, not a copy of it).
An outgoing document of a case with a protected identity is held for the unit manager's
approval before anyone can download or send it (domain.md §4.1). The web layer renders
the PDF from the :class:`LetterData` returned here (engine knows no WeasyPrint).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import access, actions, audit
from engine.audit import Actor
from engine.catalogs import legal_refs
from engine.db import utcnow
from engine.document_kinds import (
    BUILDERS,
    HOUSING_LETTER_KEYS,
    KINDS,
    LOCAL_TZ,
    LOCATION_FACTS,
    KindInfo,
    KindState,
    LegalLine,
    LetterData,
    Unavailable,
    load_record,
    subject_label,
    user_name,
)
from engine.errors import Conflict, Forbidden
from engine.models import (
    Case,
    CaseMember,
    Document,
    RoleAssignment,
    User,
)
from engine.models.documents import APPROVED, AWAITING_APPROVAL, FINAL
from engine.roles import UNIT_MANAGER

#: Decision letters (the decision PDF) are outgoing when the decision can be appealed.
DECISION_KIND = "decision"


# --------------------------------------------------------------------------- public API


def kinds_for(session: Session, actor: Actor, case_id: int) -> list[KindState]:
    """The document kinds of the case's procedure and whether each can be produced now."""
    case = access.access_case(session, actor, case_id, purpose="documents")
    rec = load_record(session, case)
    states = []
    for info in KINDS.values():
        if case.procedure not in info.procedures:
            continue
        try:
            BUILDERS[info.kind](session, rec)
        except Unavailable as exc:
            states.append(KindState(info, False, exc.code))
        else:
            states.append(KindState(info, True))
    return states


def needs_approval(case: Case, outgoing: bool) -> bool:
    """An outgoing document of a case with a protected identity waits for the unit manager."""
    return outgoing and access.is_protected(case)


def gather(session: Session, actor: Actor, *, case_id: int, kind: str) -> LetterData:
    """The facts one document of ``kind`` may print (``Unavailable`` when it may not exist)."""
    info = KINDS.get(kind)
    case = access.access_case(session, actor, case_id, purpose=f"document {kind}")
    if info is None or case.procedure not in info.procedures:
        raise Unavailable("unknown_kind")
    rec = load_record(session, case)
    facts = BUILDERS[kind](session, rec)
    if rec.protected:
        facts = {k: v for k, v in facts.items() if k not in LOCATION_FACTS}
    today = utcnow().astimezone(LOCAL_TZ).date()
    keys = list(info.legal_keys)
    if facts.get("ground_ref"):
        keys.append(facts["ground_ref"])
    catalogue = legal_refs()
    lines = tuple(
        LegalLine(key=k, label=catalogue[k].label("sv"), citation=catalogue[k].citation_on(today))
        for k in keys
        if k in catalogue
    )
    recipient = facts.get("recipients") or facts.get("target") or facts.get("recipient")
    return LetterData(
        kind=kind,
        title=info.title_sv,
        case_number=case.number,
        unit_name=rec.unit_name,
        issued_on=today,
        recipient=recipient or info.recipient,
        subject_label="" if case.procedure == "housing_notification" else subject_label(rec),
        protected=rec.protected,
        contact_person=user_name(session, actor.user_id),
        legal_refs=lines,
        facts=MappingProxyType({k: v for k, v in facts.items() if v}),
        needs_approval=needs_approval(case, info.outgoing),
    )


def _add_approvers(session: Session, case: Case) -> None:
    """Name the unit's managers on the team so they can review a held document (a
    protected case is otherwise closed to them)."""
    rows = session.execute(
        select(User.id)
        .join(RoleAssignment, RoleAssignment.user_id == User.id)
        .where(
            User.active.is_(True),
            RoleAssignment.role == UNIT_MANAGER,
            (RoleAssignment.unit_id == case.unit_id) | RoleAssignment.unit_id.is_(None),
        )
    ).scalars()
    members = {m.user_id for m in case.members}
    for user_id in set(rows) - members:
        session.add(CaseMember(case_id=case.id, user_id=user_id, reason="document approver"))


def hold_for_approval(session: Session, document: Document, case: Case) -> None:
    """Keep the bytes out of reach until the unit manager approves (domain.md §4.1)."""
    document.status = AWAITING_APPROVAL
    document.draft_content = document.content
    document.content = b""
    _add_approvers(session, case)


def store_outgoing(
    session: Session,
    actor: Actor,
    *,
    letter: LetterData,
    case_id: int,
    filename: str,
    content: bytes,
) -> Document:
    """File a rendered document in the case; held for approval when ``letter`` says so."""
    case = access.access_case(session, actor, case_id, purpose=f"document {letter.kind}")
    document = Document(
        case_id=case.id,
        decision_id=None,
        kind=letter.kind,
        title=f"{letter.title} – {letter.case_number}"[:300],
        filename=filename[:200],
        content=content,
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
        created_by_id=actor.user_id,
        status=FINAL,
    )
    session.add(document)
    if letter.needs_approval:
        hold_for_approval(session, document, case)
    session.flush()
    actions._journal(
        session, actor, case.id, f"Dokument upprättat: {document.title}", kind="document"
    )
    audit.record(
        session,
        actor,
        "document:created",
        case_id=case.id,
        object_type="document",
        object_id=document.id,
        details={"kind": letter.kind, "status": document.status, "sha256": document.sha256},
    )
    return document


def _may_approve(actor: Actor, case: Case) -> bool:
    return actor.has_role(UNIT_MANAGER, case.unit_id)


def require_approver(session: Session, actor: Actor, *, document_id: int) -> tuple[Document, Case]:
    """The held document the actor may approve: the unit's manager, not its producer."""
    document = access.access_document(session, actor, document_id)
    case = session.get(Case, document.case_id)
    assert case is not None
    if not _may_approve(actor, case):
        raise Forbidden("only the unit manager may approve an outgoing document")
    if document.created_by_id == actor.user_id:
        raise Forbidden("a document must be approved by someone other than who produced it")
    if document.status != AWAITING_APPROVAL:
        raise Conflict("the document is not waiting for approval", case_id=case.id)
    return document, case


def approve_document(
    session: Session, actor: Actor, *, document_id: int, content: bytes | None = None
) -> Document:
    """The unit manager releases a held document (never one they produced themselves).

    ``content``: the document re-rendered with the approval printed on it; without it the
    reviewed draft is released as it is.
    """
    document, case = require_approver(session, actor, document_id=document_id)
    released = content if content is not None else (document.draft_content or b"")
    document.status = APPROVED
    document.approved_by_id = actor.user_id
    document.approved_at = utcnow()
    document.content = released
    document.draft_content = None
    document.sha256 = hashlib.sha256(released).hexdigest()
    document.size = len(released)
    session.flush()
    actions._journal(
        session,
        actor,
        case.id,
        f"Dokument godkänt av enhetschef: {document.title}",
        kind="document",
    )
    audit.record(
        session,
        actor,
        "document:approved",
        case_id=case.id,
        object_type="document",
        object_id=document.id,
        purpose="unit manager approval",
        details={"kind": document.kind, "sha256": document.sha256},
    )
    return document


def document_bytes(session: Session, actor: Actor, *, document_id: int) -> tuple[Document, bytes]:
    """The bytes the actor may download, audited: a released document, or a held draft
    for the unit manager who reviews it. Everyone else gets Forbidden while it is held."""
    document = access.access_document(session, actor, document_id)
    case = session.get(Case, document.case_id)
    assert case is not None
    if document.released:
        data = bytes(document.content)
        action = "document:downloaded"
    elif document.status == AWAITING_APPROVAL and _may_approve(actor, case):
        data = bytes(document.draft_content or b"")
        action = "document:previewed"
    else:
        raise Forbidden("the document is waiting for the unit manager's approval")
    audit.record(
        session,
        actor,
        action,
        case_id=case.id,
        object_type="document",
        object_id=document.id,
        details={"kind": document.kind, "status": document.status},
    )
    return document, data


@dataclass(frozen=True)
class DocumentRow:
    """A document of a case as the documents page lists it."""

    id: int
    kind: str
    title: str
    status: str
    size: int
    created_at: datetime
    created_by: str
    approved_by: str
    approved_at: datetime | None
    may_download: bool
    may_approve: bool


def case_documents(session: Session, actor: Actor, case_id: int) -> list[DocumentRow]:
    """Every document of a case with what the actor may do with it."""
    case = access.access_case(session, actor, case_id, purpose="documents")
    rows = session.execute(
        select(Document).where(Document.case_id == case.id).order_by(Document.id)
    ).scalars()
    approver = _may_approve(actor, case)
    return [
        DocumentRow(
            id=d.id,
            kind=d.kind,
            title=d.title,
            status=d.status,
            size=d.size,
            created_at=d.created_at,
            created_by=user_name(session, d.created_by_id),
            approved_by=user_name(session, d.approved_by_id),
            approved_at=d.approved_at,
            may_download=d.released or (d.status == AWAITING_APPROVAL and approver),
            may_approve=d.status == AWAITING_APPROVAL
            and approver
            and d.created_by_id != actor.user_id,
        )
        for d in rows
    ]


def pending_for(session: Session, actor: Actor) -> list[tuple[str, int, DocumentRow]]:
    """Documents held for this unit manager's approval: (case number, case id, row)."""
    if not actor.units_for(UNIT_MANAGER):
        return []
    held = session.execute(
        select(Document.case_id).where(Document.status == AWAITING_APPROVAL).distinct()
    ).scalars()
    result = []
    for case_id in held:
        case = session.get(Case, case_id)
        if case is None or not _may_approve(actor, case):
            continue
        if access.access_reason(session, actor, case) is None:
            continue
        for row in case_documents(session, actor, case_id):
            if row.status == AWAITING_APPROVAL:
                result.append((case.number, case.id, row))
    return result


__all__ = [
    "BUILDERS",
    "DECISION_KIND",
    "HOUSING_LETTER_KEYS",
    "KINDS",
    "DocumentRow",
    "KindInfo",
    "KindState",
    "LegalLine",
    "LetterData",
    "Unavailable",
    "approve_document",
    "case_documents",
    "document_bytes",
    "gather",
    "hold_for_approval",
    "kinds_for",
    "needs_approval",
    "pending_for",
    "require_approver",
    "store_outgoing",
]
