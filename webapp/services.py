"""Actions that span the engine and the document renderer, shared by pages and the API."""

from __future__ import annotations

from flask import current_app
from sqlalchemy.orm import Session

from engine import actions, audit, queries
from engine.audit import Actor
from engine.catalogs import decision_types, legal_refs
from engine.models import Case, Decision, ProcessVersion
from engine.queries import DecisionView
from forms.spec import FormSpecError, load_form_spec
from reports.context import DecisionDocument, LegalRefLine, ReturnNote
from reports.render import render_decision_pdf


def outcome_label(version: ProcessVersion | None, view: DecisionView, value: str, lang: str) -> str:
    """The outcome's label from the proposing form's spec (falls back to the code)."""
    if version is None or not view.form_key or view.form_key not in version.forms:
        return value
    try:
        spec = load_form_spec(version.forms[view.form_key])
    except FormSpecError:
        return value
    for component in spec.fields:
        if any(option.value == value for option in component.values):
            return component.option_label(value, lang)
    return value


def build_document(session: Session, decision: Decision, lang: str = "sv") -> DecisionDocument:
    """The plain data a decision PDF shows; protected identities print no name."""
    settings = current_app.extensions["lotsen"]
    view = queries.decision_view(session, decision)
    case = session.get(Case, decision.case_id)
    assert case is not None
    case_page = queries.case_view(session, case)
    version = session.get(ProcessVersion, view.process_version_id)
    dtype = decision_types().get(view.decision_type)
    refs = legal_refs()
    day = (view.decided_at or view.proposed_at).date()
    lines = tuple(
        LegalRefLine(
            key=k,
            label=refs[k].label(lang) if k in refs else k,
            citation=refs[k].citation_on(day) if k in refs else "",
        )
        for k in view.legal_refs
    )
    history = tuple(
        ReturnNote(by=d.decided_by or "", at=d.decided_at, comment=d.comment or "")
        for d in queries.decisions_of_type(session, case.id, view.decision_type)
        if d.status == "returned" and d.decided_at is not None and d.id != view.id
    )
    subject = case_page.subjects[0] if case_page.subjects else None
    if case_page.protected:
        subject_label = "Skyddad identitet" if lang == "sv" else "Protected identity"
    else:
        subject_label = (subject.name or subject.alias or "") if subject else ""
        subject_label = subject_label or ("Okänd identitet" if lang == "sv" else "Unknown identity")
    return DecisionDocument(
        municipality=settings.municipality,
        authority=f"{settings.authority}, {settings.municipality}",
        unit_name=case_page.unit_name,
        case_number=case.number,
        procedure_label=case_page.procedure_name,
        decision_code=view.decision_type,
        decision_label=dtype.label(lang) if dtype else view.decision_type,
        outcome_code=view.outcome,
        outcome_label=outcome_label(version, view, view.outcome, lang),
        reasons=view.reasons,
        legal_refs=lines,
        proposed_by=view.proposed_by,
        proposed_at=view.proposed_at,
        approved_by=view.decided_by if view.status == "approved" else None,
        approved_at=view.decided_at if view.status == "approved" else None,
        appealable=view.appealable,
        appeal_info=dtype.appeal_info(lang) if dtype else "",
        subject_label=subject_label,
        protected_identity=case_page.protected,
        document_id=f"{case.number}-B{view.id}",
        lang=lang,
        return_history=history,
        outcome_detail=view.detail or "",
    )


def decide_with_document(
    session: Session, actor: Actor, decision_id: int, *, approve: bool, comment: str | None
) -> Decision:
    """Approve (and file the decision PDF in the case) or return a proposed decision."""
    decision = actions.decide(
        session, actor, decision_id=decision_id, approve=approve, comment=comment
    )
    if approve:
        doc = build_document(session, decision, "sv")
        pdf = render_decision_pdf(doc)
        actions.store_decision_document(
            session,
            actor,
            decision=decision,
            title=f"{doc.decision_label} – {doc.case_number}",
            filename=f"beslut-{doc.document_id}.pdf",
            content=pdf,
        )
    return decision


def record_download(session: Session, actor: Actor, case_id: int, document_id: int) -> None:
    """Every download of a document is an audited disclosure inside the organisation."""
    audit.record(
        session,
        actor,
        "document:downloaded",
        case_id=case_id,
        object_type="document",
        object_id=document_id,
    )
