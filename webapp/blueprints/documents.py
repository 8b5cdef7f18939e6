"""Outgoing documents of domain.md §10: list, produce, approve (unit manager), download.

Thin: what a document may say and who may release it is decided in ``engine.documents``;
this module renders the PDF from the engine's letter data and serves it like the decision
PDF route does (attachment, nosniff, sandbox CSP, no-store; every download audited).
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _

from engine import documents
from engine.db import utcnow
from engine.documents import LetterData, Unavailable
from engine.models import Case, User
from reports.outgoing import LegalRefText, OutgoingDocument, render_outgoing_pdf
from webapp.security import DOWNLOAD_CSP, login_required

bp = Blueprint("documents", __name__, url_prefix="/documents")

_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def reason_label(code: str) -> str:
    """Why a document cannot be produced now, in words."""
    labels = {
        "not_reached": _("The case has not reached the step this document belongs to."),
        "guardian_suspected": _(
            "A guardian is flagged as suspected of involvement: no notice is sent to the guardians."
        ),
        "notification_withheld": _("The notification to the guardians has been withheld."),
        "no_guardian": _("No guardian is recorded."),
        "not_reported": _("The decision was not to report to the police."),
        "disclosure_gate": _(
            "No consent, legal ground or approved override covers this disclosure."
        ),
        "route_without_letter": _("The route decision does not include a letter."),
        "no_consent": _("The person has not consented to sharing data with the organisation."),
        "no_feedback_requested": _("The reporter did not ask for feedback."),
        "unknown_kind": _("This document does not exist for this case."),
    }
    return str(labels.get(code, code))


def status_label(status: str) -> str:
    """A document state in words."""
    labels = {
        "final": _("Filed"),
        "awaiting_approval": _("Awaiting the unit manager's approval"),
        "approved": _("Approved"),
    }
    return str(labels.get(status, status))


def _outgoing(
    letter: LetterData,
    *,
    awaiting: bool,
    approved_by: str = "",
    approved_at: datetime | None = None,
) -> OutgoingDocument:
    settings = current_app.extensions["lotsen"]
    return OutgoingDocument(
        kind=letter.kind,
        title=letter.title,
        municipality=settings.municipality,
        authority=f"{settings.authority}, {settings.municipality}",
        unit_name=letter.unit_name,
        case_number=letter.case_number,
        issued_on=letter.issued_on,
        recipient=letter.recipient,
        subject_label=letter.subject_label,
        protected_identity=letter.protected,
        contact_person=letter.contact_person,
        legal_refs=tuple(LegalRefText(r.label, r.citation) for r in letter.legal_refs),
        facts=letter.facts,
        awaiting_approval=awaiting,
        approved_by=approved_by,
        approved_at=approved_at,
    )


def _render_index(case_id: int, error: str | None = None, chosen: str = "") -> Any:
    states = documents.kinds_for(g.db, g.actor, case_id)
    rows = documents.case_documents(g.db, g.actor, case_id)
    case = g.db.get(Case, case_id)
    return render_template(
        "documents/index.html",
        case=case,
        states=states,
        rows=rows,
        error=error,
        chosen=chosen,
        reason_label=reason_label,
        status_label=status_label,
        lang=g.lang,
    )


@bp.route("/cases/<int:case_id>")
@login_required
def index(case_id: int) -> Any:
    """The documents of a case and the ones that can be produced now."""
    return _render_index(case_id)


@bp.route("/cases/<int:case_id>", methods=["POST"])
@login_required
def generate(case_id: int) -> Any:
    """Produce one document from the case record and file it (held when protected)."""
    kind = (request.form.get("kind") or "").strip()[:40]
    try:
        letter = documents.gather(g.db, g.actor, case_id=case_id, kind=kind)
    except Unavailable as exc:
        g.db.rollback()
        message = reason_label(exc.code) if kind else _("Choose a document.")
        return _render_index(case_id, message, kind), 422
    pdf = render_outgoing_pdf(_outgoing(letter, awaiting=letter.needs_approval))
    document = documents.store_outgoing(
        g.db,
        g.actor,
        letter=letter,
        case_id=case_id,
        filename=f"{kind}-{letter.case_number}.pdf",
        content=pdf,
    )
    if document.status == "awaiting_approval":
        flash(_("The document is filed and waits for the unit manager's approval."), "success")
    else:
        flash(_("The document is filed in the case."), "success")
    return redirect(url_for("documents.index", case_id=case_id), code=303)


@bp.route("/<int:document_id>/approve", methods=["POST"])
@login_required
def approve(document_id: int) -> Any:
    """The unit manager releases a held document; it is re-rendered with the approval."""
    doc, _case = documents.require_approver(g.db, g.actor, document_id=document_id)
    content = None
    if doc.kind in documents.KINDS:
        creator = g.db.get(User, doc.created_by_id)
        letter = documents.gather(g.db, g.actor, case_id=doc.case_id, kind=doc.kind)
        letter = dataclasses.replace(
            letter, contact_person=creator.display_name if creator else letter.contact_person
        )
        me = g.db.get(User, g.actor.user_id)
        content = render_outgoing_pdf(
            _outgoing(
                letter,
                awaiting=False,
                approved_by=me.display_name if me else "",
                approved_at=utcnow(),
            )
        )
    documents.approve_document(g.db, g.actor, document_id=document_id, content=content)
    flash(_("The document is approved and may be sent."), "success")
    return redirect(url_for("documents.index", case_id=doc.case_id), code=303)


@bp.route("/<int:document_id>/download")
@login_required
def download(document_id: int) -> Any:
    """Download a document (audited); a held one only by the unit manager reviewing it."""
    doc, data = documents.document_bytes(g.db, g.actor, document_id=document_id)
    filename = _UNSAFE_FILENAME.sub("_", doc.filename).strip("._") or f"document-{doc.id}.pdf"
    response = Response(data, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = DOWNLOAD_CSP
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/pending")
@login_required
def pending() -> Any:
    """Documents waiting for this unit manager's approval."""
    items = documents.pending_for(g.db, g.actor)
    return render_template("documents/pending.html", items=items, status_label=status_label)
