"""Triage queue of the intake role (issue 6): view a report, find earlier cases of the same
person, and link, start a procedure prefilled from the report, or close with a reason.

Every decision is taken by ``engine.intake`` (access, audit, once-only); routes are thin.
A report triaged by somebody else meanwhile gives a clear 409 page, never a 500.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from engine import audit, intake, partners, triage, triage_prefill
from engine.errors import Conflict, ValidationFailed
from engine.processes import latest_published, model_for, published_procedures
from forms import FormSpec, bind_form, form_to_task_data, load_form_spec
from webapp.intake_forms import PartnerReferralForm
from webapp.security import login_required

bp = Blueprint("intake", __name__, url_prefix="/intake")

MAX_VERSION = 2**31 - 1


def _require_intake_role() -> None:
    if not intake.is_intake_staff(g.actor):
        abort(403)


def _version() -> int | None:
    raw = request.form.get("version", "")
    return int(raw) if raw.isdigit() and len(raw) < 10 else None


def kind_label(kind: str) -> str:
    """A report kind in words."""
    return str({"child": _("Child (orosanmälan)"), "adult": _("Adult")}.get(kind, kind))


def channel_label(channel: str) -> str:
    """A channel in words."""
    labels = {
        "public": _("Public e-service"),
        "partner_api": _("Partner (API)"),
        "partner_form": _("Partner (form)"),
    }
    return str(labels.get(channel, channel))


def status_label(status: str) -> str:
    """A triage status in words."""
    labels = {
        "new": _("Waiting for triage"),
        "started": _("Case started"),
        "linked": _("Linked to an earlier case"),
        "no_action": _("No action"),
    }
    return str(labels.get(status, status))


def _procedure_names() -> dict[str, str]:
    return {v.process_id: v.name for v in published_procedures(g.db)}


@bp.route("/")
@login_required
def queue() -> Any:
    """New reports of the actor's units, the longest waiting first."""
    _require_intake_role()
    status = request.args.get("status", "new")
    if status not in ("new", "started", "linked", "no_action"):
        status = "new"
    rows = triage.queue(g.db, g.actor, status=status)
    return render_template(
        "intake/queue.html",
        rows=rows,
        status=status,
        kind_label=kind_label,
        channel_label=channel_label,
        status_label=status_label,
    )


def _show(report_id: int, *, reason: str = "", errors: dict[str, list[str]] | None = None) -> str:
    view = triage.view_report(g.db, g.actor, report_id)
    matches = triage.find_earlier_cases(g.db, g.actor, report_id) if view.status == "new" else []
    return render_template(
        "intake/show.html",
        report=view,
        matches=matches,
        procedures=triage.procedures_for_unit(g.db, view.unit_id),
        procedure_names=_procedure_names(),
        kind_label=kind_label,
        channel_label=channel_label,
        status_label=status_label,
        reason=reason,
        errors=errors or {},
        min_reason=intake.MIN_REASON,
        max_reason=intake.MAX_REASON,
    )


@bp.route("/reports/<int:report_id>")
@login_required
def show(report_id: int) -> Any:
    """One report, earlier cases of the same person, and the triage choices."""
    return _show(report_id)


def _conflict(report_id: int, exc: Conflict) -> Any:
    audit.record(
        g.db,
        g.actor,
        "intake_report:triage_refused",
        outcome="refused",
        object_type="intake_report",
        object_id=report_id,
        details={"reason": "already triaged"},
    )
    details = {k: v for k, v in exc.details.items() if v is not None}
    return render_template("intake/conflict.html", report_id=report_id, **details), 409


@bp.route("/reports/<int:report_id>/close", methods=["POST"])
@login_required
def close(report_id: int) -> Any:
    """No action: the report is closed with a reason."""
    reason = (request.form.get("reason") or "").strip()
    try:
        triage.close_without_action(
            g.db, g.actor, report_id, reason=reason, expected_version=_version()
        )
    except Conflict as exc:
        g.db.rollback()
        return _conflict(report_id, exc)
    except ValidationFailed as exc:
        g.db.rollback()
        return _show(report_id, reason=reason, errors=exc.field_errors), 422
    flash(_("The report has been closed without action."), "success")
    return redirect(url_for("intake.queue"), code=303)


@bp.route("/reports/<int:report_id>/link", methods=["POST"])
@login_required
def link(report_id: int) -> Any:
    """Link the report to an earlier case of the same person instead of opening a new one."""
    raw = request.form.get("case_id", "")
    case_id = int(raw) if raw.isdigit() and len(raw) < 10 else 0
    try:
        report = triage.link_to_case(
            g.db, g.actor, report_id, case_id=case_id, expected_version=_version()
        )
    except Conflict as exc:
        g.db.rollback()
        return _conflict(report_id, exc)
    except ValidationFailed as exc:
        g.db.rollback()
        return _show(report_id, errors=exc.field_errors), 422
    flash(
        _("The report has been added to case %(number)s.", number=_case_number(report)), "success"
    )
    return redirect(url_for("intake.queue"), code=303)


def _case_number(report: Any) -> str:
    from engine.models import Case

    case = g.db.get(Case, report.case_id)
    return case.number if case else ""


def _start_spec(procedure: str) -> tuple[Any, FormSpec]:
    version = latest_published(g.db, procedure)
    key = model_for(version).start_form_key
    if not key or key not in version.forms:
        abort(404)
    return version, load_form_spec(version.forms[key])


@bp.route("/reports/<int:report_id>/start", methods=["GET", "POST"])
@login_required
def start(report_id: int) -> Any:
    """The chosen procedure's start form, prefilled from the report; posting starts the case."""
    view = triage.view_report(g.db, g.actor, report_id)
    allowed = triage.procedures_for_unit(g.db, view.unit_id)
    procedure = request.values.get("procedure") or (allowed[0] if allowed else "")
    if procedure not in allowed:
        abort(404)
    version, spec = _start_spec(procedure)
    if view.status != "new":
        return _conflict(
            report_id,
            Conflict("This report has already been triaged.", completed_by=view.triaged_by),
        )
    if request.method == "GET":
        prefill = triage_prefill.prefill(g.db, report_id, g.actor, procedure)
        form = bind_form(spec, g.lang, task_data=prefill)
        return _render_start(view, version, spec, form, procedure)
    form = bind_form(spec, g.lang, formdata=request.form)
    if not form.validate():
        return _render_start(view, version, spec, form, procedure), 422
    try:
        case = triage.start_from_report(
            g.db,
            g.actor,
            report_id,
            procedure=procedure,
            intake=form_to_task_data(spec, form),
            subject_fields=spec.subject_fields,
            expected_version=_version(),
        )
    except Conflict as exc:
        g.db.rollback()
        return _conflict(report_id, exc)
    except ValidationFailed as exc:
        g.db.rollback()
        for key, messages in exc.field_errors.items():
            if key in form._fields:
                form[key].errors = [*form[key].errors, *messages]
            else:
                form.form_errors.extend(messages)
        return _render_start(view, version, spec, form, procedure), 422
    flash(_("Case %(number)s has been registered.", number=case.number), "success")
    return redirect(url_for("cases.show", case_id=case.id), code=303)


def _render_start(view: Any, version: Any, spec: FormSpec, form: Any, procedure: str) -> str:
    return render_template(
        "intake/start.html",
        report=view,
        version=version,
        spec=spec,
        form=form,
        procedure=procedure,
        kind_label=kind_label,
    )


# --- the logged-in partner form -------------------------------------------------------------------


@bp.route("/referral", methods=["GET", "POST"])
@login_required
def referral() -> Any:
    """A partner's staff send a referral; it lands in the triage queue, and cannot be read back."""
    partner = partners.partner_of(g.db, g.actor.user_id)
    if partner is None or not g.actor.has_role(intake.PARTNER):
        abort(403)
    if request.method == "GET":
        form = PartnerReferralForm(formdata=None)
        return render_template("intake/referral.html", form=form, partner=partner)
    form = PartnerReferralForm()
    if not form.validate():
        return render_template("intake/referral.html", form=form, partner=partner), 422
    report = intake.receive_report(
        g.db,
        g.actor,
        kind=form.kind.data,
        content=form.content(),
        channel="partner_form",
        partner=partner,
        submitted_by=g.actor.user_id,
    )
    flash(
        _("The referral has been sent. Receipt number: %(receipt)s", receipt=report.receipt),
        "success",
    )
    return redirect(url_for("intake.referral"), code=303)
