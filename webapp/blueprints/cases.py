"""Case pages: the case list, registering a new case (intake form) and the case page.

Every case is fetched through ``engine.access`` (the read is logged there); the page gets
read models from ``engine.queries``, never ORM rows.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from engine import access, actions, audit, queries
from engine.catalogs import decision_types
from engine.db import utcnow
from engine.errors import NotFound, ValidationFailed
from engine.models import Consent, Draft, ProcessInstance, ProcessVersion, Unit
from engine.processes import model_for, published_procedures
from engine.queries import CaseView, SubjectView
from engine.roles import CASEWORKER
from forms import FormSpec, bind_form, form_to_task_data, load_form_spec
from forms.consent import CONSENT_PURPOSES, ConsentForm
from webapp.security import login_required
from webapp.services import outcome_label

bp = Blueprint("cases", __name__)

DEFAULT_PROCEDURE = "identification"
#: The name of the unit choice on the intake form (a leading underscore: no spec key can clash).
UNIT_FIELD = "_unit"
NOTE_TITLE_MAX = 300
NOTE_TEXT_MAX = 20000


def status_label(status: str) -> str:
    """A case status in words."""
    labels = {"Active": _("Active"), "Closed": _("Closed"), "Completed": _("Completed")}
    return str(labels.get(status, status))


def secrecy_label(secrecy_class: str) -> str:
    """A secrecy class in words."""
    labels = {
        "SOCIAL_26_1": _("Social services secrecy (OSL 26:1)"),
        "PROTECTED_IDENTITY": _("Protected identity"),
    }
    return str(labels.get(secrecy_class, secrecy_class))


def decision_status_label(status: str) -> str:
    """A decision's status in words."""
    labels = {"proposed": _("Proposed"), "approved": _("Approved"), "returned": _("Returned")}
    return str(labels.get(status, status))


def decision_type_label(code: str) -> str:
    """A decision type's name in the current language (the code when unknown)."""
    dtype = decision_types().get(code)
    return dtype.label(g.lang) if dtype else code


def mask_personnummer(value: str | None) -> str:
    """A personnummer with everything but the last four digits hidden."""
    if not value:
        return ""
    digits = "".join(ch for ch in value if ch.isdigit())
    return "********-" + digits[-4:] if len(digits) >= 4 else "****"


# --- the case list -------------------------------------------------------------------------------


@bp.route("/cases")
@login_required
def index() -> Any:
    """The cases the actor may open, newest first."""
    cases = queries.visible_cases(g.db, g.actor)
    audit.record(g.db, g.actor, "cases:listed", details={"count": len(cases)})
    unit_names = {u.id: u.name for u in g.db.execute(select(Unit)).scalars()}
    versions = {v.process_id: v.name for v in published_procedures(g.db)}
    rows = [
        {
            "id": c.id,
            "number": c.number,
            "procedure": versions.get(c.procedure, c.procedure),
            "unit": unit_names.get(c.unit_id, ""),
            "status": status_label(c.status),
            "created_at": c.created_at,
            "protected": access.is_protected(c),
        }
        for c in cases
    ]
    return render_template("cases/index.html", rows=rows)


# --- a new case ----------------------------------------------------------------------------------


def _intake_units() -> list[Unit]:
    """The units for which the actor may register cases (caseworker role)."""
    units = g.actor.units_for(CASEWORKER)
    query = select(Unit).order_by(Unit.name)
    if None not in units:
        query = query.where(Unit.id.in_([u for u in units if u is not None]))
    return list(g.db.execute(query).scalars())


def _chosen_version(versions: list[ProcessVersion]) -> ProcessVersion:
    wanted = request.args.get("procedure") or DEFAULT_PROCEDURE
    for version in versions:
        if version.process_id == wanted:
            return version
    if request.args.get("procedure"):
        abort(404)
    return versions[0]


def _intake_spec(version: ProcessVersion) -> FormSpec:
    key = model_for(version).start_form_key
    if not key or key not in version.forms:
        abort(404)
    return load_form_spec(version.forms[key])


def _first_task_for_me(case_id: int) -> str | None:
    return next((t.id for t in queries.inbox(g.db, g.actor) if t.case_id == case_id), None)


@bp.route("/cases/new", methods=["GET", "POST"])
@login_required
def new() -> Any:
    """Register a case: choose procedure and unit, fill in the procedure's intake form."""
    if not g.actor.has_role(CASEWORKER):
        abort(403)
    versions = published_procedures(g.db)
    if not versions:
        abort(404)
    version = _chosen_version(versions)
    spec = _intake_spec(version)
    units = _intake_units()
    if not units:
        abort(403)
    if request.method == "GET":
        form = bind_form(spec, g.lang)
        return _render_new(versions, version, spec, form, units, None)

    form = bind_form(spec, g.lang, formdata=request.form)
    chosen_unit = _posted_unit(units)
    valid = form.validate()
    if chosen_unit is None:
        form.form_errors.append(_("Choose the unit that registers the case."))
        valid = False
    if not valid or chosen_unit is None:
        return _render_new(versions, version, spec, form, units, chosen_unit), 422
    try:
        case = actions.start_case(
            g.db,
            g.actor,
            procedure=version.process_id,
            unit_id=chosen_unit,
            intake=form_to_task_data(spec, form),
            subject_fields=spec.subject_fields,
        )
    except ValidationFailed as exc:
        g.db.rollback()
        _apply_field_errors(form, exc.field_errors)
        return _render_new(versions, version, spec, form, units, chosen_unit), 422
    flash(_("Case %(number)s has been registered.", number=case.number), "success")
    task_id = _first_task_for_me(case.id)
    if task_id:
        return redirect(url_for("tasks.show", task_id=task_id), code=303)
    return redirect(url_for("cases.show", case_id=case.id), code=303)


def _posted_unit(units: list[Unit]) -> int | None:
    if len(units) == 1:
        return units[0].id
    raw = request.form.get(UNIT_FIELD, "")
    allowed = {u.id for u in units}
    return int(raw) if raw.isdigit() and int(raw) in allowed else None


def _apply_field_errors(form: Any, field_errors: dict[str, list[str]]) -> None:
    """Put the engine's field errors on the form's fields (or on the form itself)."""
    for key, messages in field_errors.items():
        if key in form._fields:
            form[key].errors = [*form[key].errors, *messages]
        else:
            form.form_errors.extend(messages)


def _render_new(
    versions: list[ProcessVersion],
    version: ProcessVersion,
    spec: FormSpec,
    form: Any,
    units: list[Unit],
    chosen_unit: int | None,
) -> str:
    return render_template(
        "cases/new.html",
        versions=versions,
        version=version,
        spec=spec,
        form=form,
        units=units,
        chosen_unit=chosen_unit,
        unit_field=UNIT_FIELD,
        unit_missing=request.method == "POST" and chosen_unit is None,
    )


# --- the case page -------------------------------------------------------------------------------


def _subject_rows(view: CaseView, version: ProcessVersion | None) -> list[dict[str, Any]]:
    """Subjects with coded values in words and the personnummer masked."""
    spec = None
    if version is not None:
        key = model_for(version).start_form_key
        if key and key in version.forms:
            spec = load_form_spec(version.forms[key])

    def coded(subject_field: str, value: str | None) -> str:
        if not value:
            return ""
        if spec is not None:
            for component in spec.fields:
                if component.subject_field == subject_field and component.values:
                    return component.option_label(value, g.lang)
        return value

    rows = []
    for s in view.subjects:
        rows.append(_subject_row(s, coded))
    return rows


def _subject_row(s: SubjectView, coded: Any) -> dict[str, Any]:
    return {
        "name": s.name or "",
        "alias": s.alias or "",
        "personnummer": mask_personnummer(s.personnummer),
        "age": "" if s.estimated_age is None else str(s.estimated_age),
        "age_doubt": s.age_doubt,
        "gender": coded("gender", s.gender),
        "citizenship": coded("citizenship", s.citizenship),
        "protected": s.protected,
    }


def _case_page(
    case_id: int,
    note_errors: dict[str, str] | None = None,
    note: dict[str, str] | None = None,
    consent_form: ConsentForm | None = None,
) -> str:
    case = access.access_case(g.db, g.actor, case_id)
    view = queries.case_view(g.db, case, g.actor)
    instance_version = g.db.execute(
        select(ProcessVersion)
        .join(ProcessInstance, ProcessInstance.version_id == ProcessVersion.id)
        .where(ProcessInstance.case_id == case.id)
        .order_by(ProcessInstance.id)
        .limit(1)
    ).scalar_one_or_none()
    decisions = [
        {
            "view": d,
            "type_label": decision_type_label(d.decision_type),
            "outcome_label": outcome_label(
                g.db.get(ProcessVersion, d.process_version_id), d, d.outcome, g.lang
            ),
            "status_label": decision_status_label(d.status),
        }
        for d in view.decisions
    ]
    drafts = (
        set(
            g.db.execute(
                select(Draft.task_id).where(
                    Draft.user_id == g.actor.user_id,
                    Draft.task_id.in_([t.id for t in view.open_tasks]),
                )
            ).scalars()
        )
        if view.open_tasks
        else set()
    )
    return render_template(
        "cases/show.html",
        case=view,
        subjects=_subject_rows(view, instance_version),
        decisions=decisions,
        journal=list(reversed(view.journal)),
        status_label=status_label(view.status),
        secrecy_label=secrecy_label(view.secrecy_class),
        drafts=drafts,
        actionable={t.id for t in queries.inbox(g.db, g.actor)},
        consent_form=consent_form or ConsentForm(formdata=None, given_on=utcnow().date()),
        consent_labels=dict(CONSENT_PURPOSES),
        note_errors=note_errors or {},
        note=note or {},
        note_title_max=NOTE_TITLE_MAX,
        note_text_max=NOTE_TEXT_MAX,
        # emergency access reads only: no journal or consent forms that would be refused
        read_only=access.access_reason(g.db, g.actor, case) == "break_glass",
    )


@bp.route("/cases/<int:case_id>")
@login_required
def show(case_id: int) -> Any:
    """The case page: subjects, tasks, decisions, documents and journal."""
    return _case_page(case_id)


@bp.route("/cases/<int:case_id>/journal", methods=["POST"])
@login_required
def add_note(case_id: int) -> Any:
    """Add a free journal note to the case."""
    title = (request.form.get("title") or "").strip()
    text = (request.form.get("text") or "").strip()
    errors: dict[str, str] = {}
    if not title:
        errors["title"] = _("Write a title.")
    elif len(title) > NOTE_TITLE_MAX:
        errors["title"] = _("The title can be at most %(n)d characters.", n=NOTE_TITLE_MAX)
    if not text:
        errors["text"] = _("Write the note.")
    elif len(text) > NOTE_TEXT_MAX:
        errors["text"] = _("The note can be at most %(n)d characters.", n=NOTE_TEXT_MAX)
    if errors:
        page = _case_page(case_id, note_errors=errors, note={"title": title, "text": text})
        return page, 422
    actions.add_journal_note(g.db, g.actor, case_id=case_id, title=title, text=text)
    flash(_("The journal note has been saved."), "success")
    return redirect(url_for("cases.show", case_id=case_id, _anchor="journal"), code=303)


@bp.route("/cases/<int:case_id>/consents", methods=["POST"])
@login_required
def add_consent(case_id: int) -> Any:
    """Record a consent for one purpose; invalid input re-renders the case page (422)."""
    access.access_case(g.db, g.actor, case_id, purpose="consent")
    form = ConsentForm()
    if not form.validate():
        return _case_page(case_id, consent_form=form), 422
    actions.record_consent(
        g.db,
        g.actor,
        case_id=case_id,
        purpose=form.purpose.data,
        form=form.form.data,
        given_on=form.given_on.data,
        scope=form.scope.data or None,
        interpreter_used=bool(form.interpreter_used.data),
    )
    flash(_("The consent has been recorded."), "success")
    return redirect(url_for("cases.show", case_id=case_id, _anchor="consents"), code=303)


@bp.route("/cases/<int:case_id>/consents/withdraw", methods=["POST"])
@login_required
def withdraw_consent(case_id: int) -> Any:
    """The person withdrew a consent (the form names which one)."""
    access.access_case(g.db, g.actor, case_id, purpose="consent")
    raw = request.form.get("consent_id", "")
    consent_id = int(raw) if raw.isdigit() and len(raw) < 10 else 0
    consent = g.db.get(Consent, consent_id) if consent_id else None
    if consent is None or consent.case_id != case_id:
        raise NotFound("consent not found")
    actions.withdraw_consent(g.db, g.actor, consent_id=consent_id)
    flash(_("The consent has been withdrawn."), "success")
    return redirect(url_for("cases.show", case_id=case_id, _anchor="consents"), code=303)
