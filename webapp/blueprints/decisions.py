"""Decision pages: read a decision, approve or return it (four eyes), download its PDF."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, flash, g, redirect, render_template, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from engine import access, queries
from engine.catalogs import decision_types, legal_refs
from engine.errors import Forbidden, ValidationFailed
from engine.models import Case, Decision, OpenTask, ProcessVersion
from engine.queries import DecisionView
from engine.roles import APPROVER_ROLES
from forms.approval import APPROVED, ApprovalForm
from webapp.security import DOWNLOAD_CSP, login_required
from webapp.services import decide_with_document, outcome_label, record_download

bp = Blueprint("decisions", __name__)

_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def _status_label(status: str) -> str:
    labels = {"proposed": _("Proposed"), "approved": _("Approved"), "returned": _("Returned")}
    return str(labels.get(status, status))


def _approval_task(decision: Decision) -> OpenTask | None:
    task: OpenTask | None = g.db.execute(
        select(OpenTask).where(OpenTask.decision_id == decision.id, OpenTask.status == "open")
    ).scalar_one_or_none()
    return task


def _may_decide(decision: Decision, case: Case) -> bool:
    """Proposed, an approver of the case's unit, not the proposer, and the open task fits."""
    if decision.status != "proposed" or decision.proposed_by_id == g.actor.user_id:
        return False
    if not any(g.actor.has_role(role, case.unit_id) for role in APPROVER_ROLES):
        return False
    task = _approval_task(decision)
    return task is not None and access.can_approve(g.actor, task)


def _labelled(view: DecisionView) -> dict[str, Any]:
    """A decision view with its type, outcome and legal references in words."""
    version = g.db.get(ProcessVersion, view.process_version_id)
    dtype = decision_types().get(view.decision_type)
    refs = legal_refs()
    day = (view.decided_at or view.proposed_at).date()
    return {
        "view": view,
        "type_label": dtype.label(g.lang) if dtype else view.decision_type,
        "outcome_label": outcome_label(version, view, view.outcome, g.lang),
        "status_label": _status_label(view.status),
        "legal_refs": [
            {
                "label": refs[key].label(g.lang) if key in refs else key,
                "citation": refs[key].citation_on(day) if key in refs else "",
            }
            for key in view.legal_refs
        ],
    }


def _render(decision: Decision, form: ApprovalForm | None) -> str:
    case = g.db.get(Case, decision.case_id)
    assert case is not None
    view = queries.decision_view(g.db, decision)
    history = [
        _labelled(d)
        for d in queries.decisions_of_type(g.db, decision.case_id, view.decision_type)
        if d.id != view.id and d.status == "returned"
    ]
    may_decide = _may_decide(decision, case)
    return render_template(
        "decisions/show.html",
        d=_labelled(view),
        history=history,
        form=(form or ApprovalForm()) if may_decide else None,
        protected=access.is_protected(case),
    )


@bp.route("/decisions/<int:decision_id>")
@login_required
def show(decision_id: int) -> Any:
    """A decision: what it says, who proposed and approved it, and the approval form."""
    decision = access.access_decision(g.db, g.actor, decision_id)
    return _render(decision, None)


@bp.route("/decisions/<int:decision_id>", methods=["POST"])
@login_required
def decide(decision_id: int) -> Any:
    """Approve (files the PDF) or return (needs a comment) a proposed decision."""
    decision = access.access_decision(g.db, g.actor, decision_id)
    case = g.db.get(Case, decision.case_id)
    assert case is not None
    access.require_approver(g.actor, decision, case)
    form = ApprovalForm()
    if not form.validate():
        return _render(decision, form), 422
    approve = form.outcome == APPROVED
    try:
        decide_with_document(
            g.db, g.actor, decision_id, approve=approve, comment=form.comment.data or None
        )
    except ValidationFailed as exc:
        g.db.rollback()
        form.comment.errors = [*form.comment.errors, *exc.field_errors.get("comment", [])]
        if not form.comment.errors:
            form.form_errors.extend(m for ms in exc.field_errors.values() for m in ms)
        decision = access.access_decision(g.db, g.actor, decision_id)
        return _render(decision, form), 422
    if approve:
        flash(_("The decision has been approved and filed in the case."), "success")
    else:
        flash(_("The decision has been returned to the caseworker."), "success")
    return redirect(url_for("cases.show", case_id=case.id), code=303)


@bp.route("/documents/<int:document_id>")
@login_required
def document(document_id: int) -> Any:
    """Download a stored document (an audited disclosure), never rendered in the browser."""
    doc = access.access_document(g.db, g.actor, document_id)
    if not doc.released:  # held for the unit manager (protected identity): see documents.download
        raise Forbidden("the document is waiting for the unit manager's approval")
    record_download(g.db, g.actor, doc.case_id, doc.id)
    filename = _UNSAFE_FILENAME.sub("_", doc.filename).strip("._") or f"document-{doc.id}.pdf"
    response = Response(bytes(doc.content), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = DOWNLOAD_CSP
    response.headers["Cache-Control"] = "no-store"
    return response
