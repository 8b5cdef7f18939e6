"""Task pages: show a step's form, save a draft, complete it, claim and release it.

A completion carries the instance version the form was opened on and a one-time submission id:
a stale form gives the 409 page (the typed data kept as a draft), and a second post of the same
submission (a double click, the back button) leads to the case page without a second change.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from engine import access, actions, audit, queries
from engine.db import utcnow
from engine.errors import Conflict, LotsenError, ValidationFailed
from engine.models import AuditEntry, Draft, OpenTask
from engine.roles import EXTERNAL_ROLES
from forms import FormSpec, bind_form, draft_from_formdata, form_to_task_data, load_form_spec
from webapp.security import login_required
from webapp.templating import local_time

bp = Blueprint("tasks", __name__)

#: The audit action that remembers which submission completed a task (double-submit guard).
SUBMITTED = "task:submitted"
#: How long a repeated submission of a completed task counts as a double submit.
DOUBLE_SUBMIT_WINDOW = timedelta(minutes=30)


def _spec_of(context: dict[str, Any]) -> FormSpec:
    raw = context.get("spec") or {}
    if not raw:
        abort(404)
    return load_form_spec(raw)


def _approval_redirect(task: OpenTask) -> Any:
    return redirect(url_for("decisions.show", decision_id=task.decision_id), code=303)


def _draft_saved_at(task_id: str) -> Any:
    return g.db.execute(
        select(Draft.updated_at).where(Draft.task_id == task_id, Draft.user_id == g.actor.user_id)
    ).scalar_one_or_none()


def _render(
    task: OpenTask,
    spec: FormSpec,
    form: Any,
    *,
    draft_at: Any = None,
    submission_id: str | None = None,
    version: int | None = None,
) -> str:
    view = queries.task_view(g.db, task)
    meta = model_for_task(task)
    return render_template(
        "tasks/show.html",
        task=view,
        disclosure=bool(meta and meta.properties.get("disclosure")),
        spec=spec,
        form=form,
        draft_at=draft_at,
        submission_id=submission_id or uuid.uuid4().hex,
        version=view.version if version is None else version,
        mine=view.assignee_id is not None and view.assignee_id == g.actor.user_id,
    )


@bp.route("/tasks/<task_id>")
@login_required
def show(task_id: str) -> Any:
    """A step: its form (prefilled from my draft or the task data), or who completed it."""
    task = access.access_task(g.db, g.actor, task_id)
    if task.decision_id is not None:
        return _approval_redirect(task)
    if task.status != "open":
        view = queries.task_view(g.db, task)
        kept = actions.load_draft(g.db, g.actor, task.id)
        entries: list[tuple[str, str]] = []
        if kept:
            spec = _spec_of(queries.task_form_context(g.db, task))
            entries = _draft_entries(spec, kept)
        return render_template("tasks/done.html", task=view, kept_entries=entries)
    context = queries.task_form_context(g.db, task)
    spec = _spec_of(context)
    draft = actions.load_draft(g.db, g.actor, task.id)
    if draft is not None:
        form = bind_form(spec, g.lang, task_data=draft)
        return _render(task, spec, form, draft_at=_draft_saved_at(task.id))
    form = bind_form(spec, g.lang, task_data=context.get("data") or {})
    return _render(task, spec, form)


def _draft_entries(spec: FormSpec, draft: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs of what the user typed, for reading back after a conflict."""
    entries = []
    for component in spec.fields:
        value = draft.get(component.key or "")
        if value in (None, "", [], False):
            continue
        values = value if isinstance(value, list) else [value]
        shown = ", ".join(
            component.option_label(v, g.lang) if component.values else str(v) for v in values
        )
        entries.append((component.label_text(g.lang), shown))
    return entries


def model_for_task(task: OpenTask) -> Any:
    """The model metadata of a task's step (None for steps outside the model)."""
    from engine.models import ProcessInstance, ProcessVersion
    from engine.processes import model_for

    instance = g.db.get(ProcessInstance, task.instance_id)
    version = g.db.get(ProcessVersion, instance.version_id) if instance else None
    return model_for(version).tasks.get(task.bpmn_id) if version else None


def _already_submitted(task_id: str, submission_id: str) -> bool:
    """True when this submission id already completed the task (a repeated post)."""
    if not submission_id:
        return False
    rows = g.db.execute(
        select(AuditEntry).where(
            AuditEntry.action == SUBMITTED,
            AuditEntry.object_type == "task",
            AuditEntry.object_id == task_id,
            AuditEntry.actor_id == g.actor.user_id,
        )
    ).scalars()
    return any((row.details or {}).get("submission_id") == submission_id for row in rows)


def _repeat_of_done(task: OpenTask, submission_id: str) -> bool:
    """A double submit: the same user's same submission completed the task a moment ago."""
    return (
        task.status == "done"
        and task.completed_by_id == g.actor.user_id
        and task.completed_at is not None
        and utcnow() - task.completed_at < DOUBLE_SUBMIT_WINDOW
        and _already_submitted(task.id, submission_id)
    )


def _already_done_redirect(case_id: int) -> Any:
    flash(_("This step had already been completed; nothing was changed."), "info")
    return redirect(url_for("cases.show", case_id=case_id), code=303)


def _save_draft_quietly(
    task_id: str, data: dict[str, Any], *, after_conflict: bool = False
) -> bool:
    """Keep typed data as a draft if the task still allows it; never fail the request."""
    try:
        with g.db.begin_nested():
            actions.save_draft(
                g.db, g.actor, task_id=task_id, data=data, after_conflict=after_conflict
            )
    except LotsenError:
        return False
    return True


def _apply_field_errors(form: Any, field_errors: dict[str, list[str]]) -> None:
    for key, messages in field_errors.items():
        if key in form._fields:
            form[key].errors = [*form[key].errors, *messages]
        else:
            form.form_errors.extend(messages)


@bp.route("/tasks/<task_id>", methods=["POST"])
@login_required
def submit(task_id: str) -> Any:
    """Save a draft (no validation) or complete the step (validated, version-checked)."""
    task = access.access_task(g.db, g.actor, task_id, purpose="submit")
    if task.decision_id is not None:
        return _approval_redirect(task)
    task = actions.lock_for_submit(g.db, task)
    submission_id = request.form.get("submission_id", "")[:64]
    if task.status != "open" and _repeat_of_done(task, submission_id):
        return _already_done_redirect(task.case_id)
    context = queries.task_form_context(g.db, task)
    spec = _spec_of(context)
    draft = draft_from_formdata(spec, request.form)
    if task.status != "open":
        return _conflict(task_id, draft, _done_conflict(task), submission_id)
    version = _posted_version()
    if request.form.get("action") == "draft":
        actions.save_draft(g.db, g.actor, task_id=task.id, data=draft)
        flash(_("Draft saved."), "success")
        return redirect(url_for("tasks.show", task_id=task.id), code=303)
    if request.form.get("action") != "complete":
        abort(400)
    form = bind_form(spec, g.lang, formdata=request.form)
    if not form.validate():
        actions.save_draft(g.db, g.actor, task_id=task.id, data=draft)
        return _render(task, spec, form, submission_id=submission_id, version=version), 422
    try:
        result = actions.complete_task(
            g.db,
            g.actor,
            task_id=task.id,
            data=form_to_task_data(spec, form),
            expected_version=version,
        )
    except Conflict as exc:
        return _conflict(task_id, draft, exc, submission_id)
    except ValidationFailed as exc:
        g.db.rollback()
        task = _reload(task_id)
        _apply_field_errors(form, exc.field_errors)
        _save_draft_quietly(task_id, draft)
        return _render(task, spec, form, submission_id=submission_id, version=version), 422
    audit.record(
        g.db,
        g.actor,
        SUBMITTED,
        case_id=result.case_id,
        object_type="task",
        object_id=task_id,
        details={"submission_id": submission_id},
    )
    flash(_("The step has been completed."), "success")
    if result.next_task_id:
        return redirect(url_for("tasks.show", task_id=result.next_task_id), code=303)
    if g.actor.role_names <= EXTERNAL_ROLES:
        # partners never open the case record: back to their inbox
        return redirect(url_for("main.index"), code=303)
    return redirect(url_for("cases.show", case_id=result.case_id), code=303)


def _done_conflict(task: OpenTask) -> Conflict:
    if task.completed_by_id is not None:
        return Conflict("the task has already been completed", case_id=task.case_id)
    return Conflict("the task is no longer open", case_id=task.case_id)


def _posted_version() -> int:
    raw = request.form.get("version", "")
    if not raw.isdigit():
        abort(400)
    return int(raw)


def _reload(task_id: str) -> OpenTask:
    task: OpenTask | None = g.db.get(OpenTask, task_id)
    if task is None:
        abort(404)
    return task


def _conflict(task_id: str, draft: dict[str, Any], exc: Conflict, submission_id: str = "") -> Any:
    """Somebody else got there first: keep the typed data as a draft, explain, 409."""
    g.db.rollback()
    task = _reload(task_id)
    if _repeat_of_done(task, submission_id):
        return _already_done_redirect(task.case_id)
    draft_saved = _save_draft_quietly(task_id, draft, after_conflict=True)
    audit.record(
        g.db,
        g.actor,
        "task:conflict",
        case_id=task.case_id,
        object_type="task",
        object_id=task_id,
        outcome="refused",
        details={"draft_saved": draft_saved},
    )
    completed_by = exc.details.get("completed_by")
    completed_at = local_time(task.completed_at) if task.completed_at else None
    if completed_by is None and task.completed_by_id is not None:
        completed_by = queries.task_view(g.db, task).completed_by_name
    return render_template(
        "conflict.html",
        message=exc.message,
        completed_by=completed_by,
        completed_at=completed_at,
        case_id=task.case_id,
        draft_saved=draft_saved,
    ), 409


@bp.route("/tasks/<task_id>/claim", methods=["POST"])
@login_required
def claim(task_id: str) -> Any:
    """Take the step from the shared queue."""
    actions.claim_task(g.db, g.actor, task_id=task_id)
    flash(_("You have taken this step."), "success")
    return redirect(url_for("tasks.show", task_id=task_id), code=303)


@bp.route("/tasks/<task_id>/unclaim", methods=["POST"])
@login_required
def unclaim(task_id: str) -> Any:
    """Give the step back to the shared queue."""
    task = actions.unclaim_task(g.db, g.actor, task_id=task_id)
    flash(_("The step is back in the shared queue."), "success")
    return redirect(url_for("tasks.show", task_id=task.id), code=303)


@bp.route("/tasks/<task_id>/override", methods=["POST"])
@login_required
def request_override(task_id: str) -> Any:
    """Ask a supervisor to allow this disclosure without consent or legal ground."""
    reason = (request.form.get("override_reason") or "").strip()[:2000]
    try:
        actions.request_override(g.db, g.actor, task_id=task_id, reason=reason)
    except ValidationFailed:
        g.db.rollback()
        flash(_("Give the reason for the override."), "error")
        return redirect(url_for("tasks.show", task_id=task_id, _anchor="override"), code=303)
    flash(_("The override has been sent to a supervisor for approval."), "success")
    return redirect(url_for("tasks.show", task_id=task_id), code=303)
