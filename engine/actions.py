"""Every state change Lotsen makes: ``<verb>_<noun>(session, actor, ...)``.

Each action checks access, changes rows, advances the engine at most once, serializes the
workflow once, syncs the open-task rows and writes its audit entry — all in the caller's
transaction. Nothing here commits: the caller commits once or rolls back.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from engine import access, audit, crypto
from engine.audit import Actor
from engine.catalogs import procedure_settings
from engine.db import utcnow
from engine.errors import Conflict, Forbidden, NotFound, ValidationFailed
from engine.models import (
    Case,
    CaseLink,
    CaseMember,
    Consent,
    Decision,
    Document,
    Draft,
    JournalNote,
    OpenTask,
    ProcessInstance,
    ProcessVersion,
    Subject,
    Unit,
    User,
)
from engine.processes import (
    declared_keys,
    empty_values,
    latest_published,
    model_for,
    option_label,
    subject_field_map,
)
from engine.roles import INTAKE_ROLES, SUPERVISOR
from engine.workflow.deadlines import compute_due_at
from engine.workflow.expressions import evaluate
from engine.workflow.problems import InvalidTaskData, TaskNotReady
from engine.workflow.runtime import StartRequest, WorkflowRuntime
from engine.workflow.specs import ProcessModel, TaskMeta

runtime = WorkflowRuntime()

CASE_PREFIX = {
    "identification": "ID",
    "child_safeguarding": "BU",
    "housing_notification": "BO",
    "victim_support": "ST",
}
#: A returned decision loops back to its proposal; the loop is bounded here, not in BPMN.
MAX_RETURNS = 5
#: How deep linked procedures may start each other (A starts B starts C) before it is a loop.
MAX_LINK_DEPTH = 3
#: Legal-ground values that are not a ground of their own (consent must then be recorded).
NO_GROUND = frozenset({"", "none", "consent", "unclear", "consult_without_personal_data"})
#: Subject fields that identify a person: kept on the encrypted subject, not in task data.
IDENTITY_FIELDS = frozenset({"name", "alias", "personnummer", "birth_date"})
SUBJECT_COLUMNS = frozenset(
    {
        "name",
        "alias",
        "personnummer",
        "birth_date",
        "estimated_age",
        "age_doubt",
        "gender",
        "citizenship",
        "protected_identity_type",
    }
)


@dataclass(frozen=True)
class CompletionResult:
    """What completing a task led to: the case, and the next task for this actor if any."""

    case_id: int
    next_task_id: str | None
    decision_id: int | None


def _add_member(session: Session, case_id: int, actor: Actor, reason: str) -> None:
    if actor.user_id is None:
        return
    exists = session.execute(
        select(CaseMember.id).where(
            CaseMember.case_id == case_id, CaseMember.user_id == actor.user_id
        )
    ).first()
    if exists is None:
        session.add(CaseMember(case_id=case_id, user_id=actor.user_id, reason=reason))


def _journal(
    session: Session,
    actor: Actor,
    case_id: int,
    title: str,
    text: str | None = None,
    *,
    kind: str = "step",
    task_bpmn_id: str | None = None,
) -> None:
    session.add(
        JournalNote(
            case_id=case_id,
            author_id=actor.user_id,
            title=title[:300],
            text=text or None,
            kind=kind,
            task_bpmn_id=task_bpmn_id,
            event_date=utcnow().date(),
        )
    )


def _due_at(meta: TaskMeta, case: Case, now: datetime) -> datetime | None:
    if not meta.deadline:
        return None
    start = case.received_at if meta.deadline_from == "case" else now
    return compute_due_at(start, meta.deadline, working_days=meta.deadline_working_days)


def _sync_tasks(
    session: Session, case: Case, instance: ProcessInstance, model: ProcessModel, ready: list[Any]
) -> list[OpenTask]:
    """Make the open-task rows match the engine's READY user tasks; return the new ones."""
    now = utcnow()
    ready_ids = {t.task_id for t in ready}
    open_rows = session.execute(
        select(OpenTask).where(OpenTask.instance_id == instance.id, OpenTask.status == "open")
    ).scalars()
    for row in open_rows:
        if row.id not in ready_ids and row.bpmn_id != OVERRIDE_TASK:
            row.status = "cancelled"
            row.completed_at = now
    known = set(session.execute(select(OpenTask.id).where(OpenTask.id.in_(ready_ids))).scalars())
    created = []
    for t in ready:
        if t.task_id in known:
            continue
        meta = model.tasks.get(t.bpmn_id)
        if meta is None:
            continue
        decision_id = None
        if meta.approves_decision:
            decision_id = session.execute(
                select(Decision.id)
                .where(
                    Decision.instance_id == instance.id,
                    Decision.decision_type == meta.approves_decision,
                    Decision.status == "proposed",
                )
                .order_by(Decision.id.desc())
                .limit(1)
            ).scalar_one_or_none()
        row = OpenTask(
            id=t.task_id,
            instance_id=instance.id,
            case_id=case.id,
            bpmn_id=t.bpmn_id,
            name=meta.name or t.name,
            form_key=meta.form_key,
            role=t.lane or meta.lane,
            unit_id=case.unit_id,
            due_at=_due_at(meta, case, now),
            decision_id=decision_id,
            created_at=now,
        )
        if access.is_protected(case) and row.role:
            # Protected identity: the task goes to a named team member, never to the queue.
            row.assignee_id = _team_member_with_role(session, case, row.role)
        session.add(row)
        created.append(row)
    session.flush()
    return created


def _team_member_with_role(session: Session, case: Case, role: str) -> int | None:
    """The earliest-added active team member who holds ``role`` for the case's unit."""
    members = session.execute(
        select(CaseMember).where(CaseMember.case_id == case.id).order_by(CaseMember.id)
    ).scalars()
    for member in members:
        user = session.get(User, member.user_id)
        if (
            user is not None
            and user.active
            and any(r.role == role and r.unit_id in (None, case.unit_id) for r in user.roles)
        ):
            return user.id
    return None


def _save_state(instance: ProcessInstance, wf: Any) -> None:
    try:
        state = runtime.dump(wf)
    except InvalidTaskData as exc:
        raise ValidationFailed({"_": [str(exc)]}) from exc
    instance.state = state
    instance.state_bytes = len(state)
    instance.updated_at = utcnow()
    instance.next_timer_due_at = runtime.next_timer_due(wf)
    if runtime.is_completed(wf):
        instance.status = "completed"


def _lock_instance(session: Session, instance_id: int) -> ProcessInstance:
    instance = session.execute(
        select(ProcessInstance)
        .where(ProcessInstance.id == instance_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    return instance


def lock_for_submit(session: Session, task: OpenTask) -> OpenTask:
    """Wait for a concurrent completion of the task's case, then read the task again.

    Under READ COMMITTED a request may read the task as open just before another request
    commits its completion, and then load the newer engine state: locking the instance first
    makes the loser see the task as done (a double click then gets its usual redirect).
    """
    _lock_instance(session, task.instance_id)
    session.refresh(task)
    return task


def _flush_or_conflict(session: Session) -> None:
    try:
        session.flush()
    except StaleDataError as exc:
        raise Conflict("the case was changed by someone else at the same time") from exc


def start_case(
    session: Session,
    actor: Actor,
    *,
    procedure: str,
    unit_id: int,
    intake: Mapping[str, Any],
    subject_fields: Mapping[str, str] | None = None,
    received_at: datetime | None = None,
    linked_from: Case | None = None,
    link_reason: str = "",
    allowed_roles: frozenset[str] = INTAKE_ROLES,
    _depth: int = 0,
) -> Case:
    """Register a case and start its procedure with the intake data (step 1).

    ``linked_from``: the case whose procedure asked for this one (a child found during
    identification); the new case lands in its procedure's own unit, is linked to the
    first, and gives the actor no membership in it. ``allowed_roles``: who may register
    (the unit's caseworkers; triage of an outside report also lets intake staff).
    """
    if linked_from is None and not any(actor.has_role(r, unit_id) for r in allowed_roles):
        raise Forbidden("only caseworkers of the unit may register a case")
    if _depth > MAX_LINK_DEPTH:
        raise Conflict("linked procedures start each other in a loop")
    if session.get(Unit, unit_id) is None:
        raise NotFound("unit not found")
    version = latest_published(session, procedure)
    model = model_for(version)
    now = utcnow()
    subject_fields = dict(
        subject_fields or subject_field_map(version.forms.get(model.start_form_key or "", {}))
    )
    subject_values = {
        field: intake.get(key) for key, field in subject_fields.items() if field in SUBJECT_COLUMNS
    }
    intake_spec = version.forms.get(model.start_form_key or "", {})
    declared = set(declared_keys(intake_spec))
    given = {k: v for k, v in intake.items() if k in declared}
    task_data = {
        k: v
        for k, v in {**empty_values(intake_spec), **given}.items()
        if subject_fields.get(k) not in IDENTITY_FIELDS
    }
    protected = str(subject_values.get("protected_identity_type") or "none") != "none"
    settings = procedure_settings().get(procedure)
    case = Case(
        number="pending",
        procedure=procedure,
        unit_id=unit_id,
        secrecy_class="PROTECTED_IDENTITY"
        if protected
        else (settings.secrecy_class if settings else "SOCIAL_26_1"),
        created_by_id=actor.user_id,
        created_at=now,
        received_at=received_at or now,
    )
    session.add(case)
    session.flush()
    case.number = f"{CASE_PREFIX.get(procedure, 'AR')}-{now.year}-{case.id:05d}"
    if subject_fields:
        session.add(_subject_from(case.id, subject_values))
    if linked_from is None:
        _add_member(session, case.id, actor, "creator")
    else:
        session.add(
            CaseLink(
                from_case_id=linked_from.id,
                to_case_id=case.id,
                reason=link_reason[:100],
                created_by_id=actor.user_id,
            )
        )
    try:
        wf = runtime.start(version.sha256, version.spec_json, task_data)
    except InvalidTaskData as exc:
        raise ValidationFailed({"_": [str(exc)]}) from exc
    instance = ProcessInstance(case_id=case.id, version_id=version.id, state="", started_at=now)
    session.add(instance)
    session.flush()
    requests = runtime.take_start_requests(wf)
    _save_state(instance, wf)
    _sync_tasks(session, case, instance, model, runtime.ready_user_tasks(wf))
    note = intake.get("journal_note")
    _journal(
        session,
        actor,
        case.id,
        f"Ärende registrerat ({version.name})",
        str(note) if note else None,
        kind="intake",
    )
    session.flush()
    audit.record(
        session,
        actor,
        "case:created" if linked_from is None else "case:created_linked",
        case_id=case.id,
        object_type="case",
        object_id=case.id,
        purpose="intake",
        details={"procedure": procedure, "version": version.number},
    )
    _start_linked(session, actor, case, requests, depth=_depth)
    return case


def _unit_for(session: Session, procedure: str, fallback: int) -> int:
    """The unit that owns a procedure's cases (bpmn/procedures.toml), else ``fallback``."""
    settings = procedure_settings().get(procedure)
    if settings is None or settings.unit_key is None:
        return fallback
    unit_id = session.execute(select(Unit.id).where(Unit.key == settings.unit_key)).scalar()
    return unit_id if unit_id is not None else fallback


SUBJECT_COPY = (
    "role",
    "name",
    "alias",
    "personnummer",
    "personnummer_index",
    "birth_date",
    "estimated_age",
    "age_doubt",
    "gender",
    "citizenship",
    "protected_identity_type",
)


def _copy_subjects(session: Session, source: Case, target: Case) -> None:
    """A follow-on case about the same person carries that person's (encrypted) record."""
    for subject in list(target.subjects):
        session.delete(subject)
    session.flush()
    for subject in source.subjects:
        session.add(Subject(case_id=target.id, **{f: getattr(subject, f) for f in SUBJECT_COPY}))
    if source.secrecy_class == "PROTECTED_IDENTITY":
        target.secrecy_class = "PROTECTED_IDENTITY"
    session.flush()
    session.expire(target, ["subjects"])


def _has_content(item: Mapping[str, Any]) -> bool:
    return any(v not in (None, "", [], False) for v in item.values())


def _start_linked(
    session: Session, actor: Actor, case: Case, requests: list[StartRequest], *, depth: int
) -> list[Case]:
    """Start the linked cases a model asked for (one per ``each`` item with content)."""
    started = []
    for request in requests:
        payload = dict(request.payload)
        each = payload.pop("each", None)
        same_person = bool(payload.pop("same_person", False))
        if isinstance(each, list):
            intakes = [{**payload, **i} for i in each if isinstance(i, dict) and _has_content(i)]
        else:
            intakes = [payload]
        for intake in intakes:
            new_case = start_case(
                session,
                actor,
                procedure=request.process_id,
                unit_id=_unit_for(session, request.process_id, case.unit_id),
                intake=intake,
                received_at=report_time(intake),
                linked_from=case,
                link_reason=str(payload.get("reason") or f"started from {case.number}"),
                _depth=depth + 1,
            )
            if same_person:
                _copy_subjects(session, case, new_case)
            started.append(new_case)
    if started:
        _journal(
            session,
            actor,
            case.id,
            "Länkade ärenden startade: " + ", ".join(c.number for c in started),
            kind="link",
        )
    return started


#: Intake keys that carry when the report or contact reached social services, per start form.
REPORT_TIME_KEYS = ("report_received_at", "contact_datetime", "support_requested_at")
LOCAL_TZ = ZoneInfo("Europe/Stockholm")


def report_time(intake: Mapping[str, Any]) -> datetime | None:
    """When a linked case's report came in, from its intake data (never in the future).

    Why: statutory clocks (the protection assessment the same day, 14 days for the
    preliminary assessment) run from the report, not from when the linked case was opened.
    A naive value is Swedish local time; an unreadable one leaves the default (now).
    """
    now = utcnow()
    for key in REPORT_TIME_KEYS:
        value = intake.get(key)
        if not isinstance(value, str) or not value:
            continue
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=LOCAL_TZ)
        return min(moment.astimezone(now.tzinfo), now)
    return None


def _subject_from(case_id: int, values: Mapping[str, Any]) -> Subject:
    pnr = values.get("personnummer") or None
    age = values.get("estimated_age")
    return Subject(
        case_id=case_id,
        name=(str(values["name"]) if values.get("name") else None),
        alias=(str(values["alias"]) if values.get("alias") else None),
        personnummer=pnr,
        personnummer_index=crypto.blind_index(str(pnr), purpose="personnummer") if pnr else None,
        birth_date=(str(values["birth_date"]) if values.get("birth_date") else None),
        estimated_age=int(age) if isinstance(age, int | float) else None,
        age_doubt=bool(values.get("age_doubt")),
        gender=(str(values["gender"]) if values.get("gender") else None),
        citizenship=(str(values["citizenship"]) if values.get("citizenship") else None),
        protected_identity_type=str(values.get("protected_identity_type") or "none"),
    )


def _load_for_task(
    session: Session, actor: Actor, task_id: str, *, purpose: str
) -> tuple[OpenTask, ProcessInstance, ProcessVersion, Case]:
    task = access.access_task(session, actor, task_id, purpose=purpose)
    instance = _lock_instance(session, task.instance_id)
    session.refresh(task)
    if task.status != "open":
        raise _already_done(session, task)
    if not access.task_matches(actor, task):
        raise NotFound("task not found")
    version = session.get(ProcessVersion, instance.version_id)
    case = session.get(Case, task.case_id)
    assert version is not None and case is not None
    return task, instance, version, case


def _already_done(session: Session, task: OpenTask) -> Conflict:
    who = session.get(User, task.completed_by_id) if task.completed_by_id else None
    when = task.completed_at.isoformat() if task.completed_at else None
    return Conflict(
        "the task has already been completed" if who else "the task is no longer open",
        completed_by=who.display_name if who else None,
        completed_at=when,
        case_id=task.case_id,
    )


def complete_task(
    session: Session,
    actor: Actor,
    *,
    task_id: str,
    data: Mapping[str, Any],
    expected_version: int | None = None,
) -> CompletionResult:
    """Complete a user task with validated form data and advance the procedure."""
    task, instance, version, case = _load_for_task(session, actor, task_id, purpose="complete")
    if expected_version is not None and instance.version != expected_version:
        raise Conflict("the case has changed since the form was opened", case_id=case.id)
    model = model_for(version)
    meta = model.tasks.get(task.bpmn_id)
    if meta is None:
        raise NotFound("task not found")
    if meta.approves_decision:
        raise Forbidden("an approval task is completed by approving or returning its decision")
    allowed = set(declared_keys(version.forms.get(meta.form_key or "", {})))
    clean = {k: v for k, v in data.items() if k in allowed}
    _check_disclosure(session, case, task, meta, clean)
    wf = runtime.restore(version.sha256, version.spec_json, instance.state)
    try:
        runtime.complete_user_task(wf, task_id, clean)
    except TaskNotReady as exc:
        raise Conflict("the task is no longer ready", case_id=case.id) from exc
    except InvalidTaskData as exc:
        raise ValidationFailed({"_": [str(exc)]}) from exc
    now = utcnow()
    task.status = "done"
    task.completed_at = now
    task.completed_by_id = actor.user_id
    task.assignee_id = task.assignee_id or actor.user_id
    decision_id = None
    if meta.decision_type:
        form_spec = version.forms.get(meta.form_key or "", {})
        decision = _propose_decision(session, actor, case, instance, task, meta, clean, form_spec)
        decision_id = decision.id
    requests = runtime.take_start_requests(wf)
    _save_state(instance, wf)
    _flush_or_conflict(session)
    _add_member(session, case.id, actor, "worked")
    _record_consents_from(session, actor, case, clean)
    for draft in session.execute(select(Draft).where(Draft.task_id == task.id)).scalars():
        session.delete(draft)
    new_rows = _sync_tasks(session, case, instance, model, runtime.ready_user_tasks(wf))
    note = clean.get("journal_note")
    _journal(
        session,
        actor,
        case.id,
        f"{task.name}: slutförd",
        str(note) if note else None,
        task_bpmn_id=task.bpmn_id,
    )
    audit.record(
        session,
        actor,
        "task:completed",
        case_id=case.id,
        object_type="task",
        object_id=task.id,
        purpose=task.bpmn_id,
        details={"fields": sorted(clean)},
    )
    _start_linked(session, actor, case, requests, depth=0)
    mine = next((r.id for r in new_rows if access.task_matches(actor, r)), None)
    return CompletionResult(case_id=case.id, next_task_id=mine, decision_id=decision_id)


def _propose_decision(
    session: Session,
    actor: Actor,
    case: Case,
    instance: ProcessInstance,
    task: OpenTask,
    meta: TaskMeta,
    data: Mapping[str, Any],
    form_spec: Mapping[str, Any],
) -> Decision:
    """Record the proposal a task's form made; a supervisor approves or returns it."""
    outcome = data.get(meta.decision_outcome_field or "")
    if not outcome:
        raise ValidationFailed({meta.decision_outcome_field or "_": ["An outcome is required."]})
    reasons_key = meta.decision_reasons_field or ""
    decision = Decision(
        case_id=case.id,
        instance_id=instance.id,
        decision_type=meta.decision_type or "",
        outcome=str(outcome),
        reasons=str(data.get(reasons_key) or ""),
        detail=_decision_detail(meta, data),
        legal_refs=",".join(meta.legal_refs),
        appealable=_appealable(meta, str(outcome)),
        proposal_task_id=task.id,
        proposed_by_id=actor.user_id,
        status="proposed",
    )
    session.add(decision)
    session.flush()
    outcome_text = option_label(form_spec, meta.decision_outcome_field or "", str(outcome), "sv")
    _journal(
        session,
        actor,
        case.id,
        f"Beslut {decision.decision_type} föreslaget: {outcome_text}",
        kind="decision",
        task_bpmn_id=task.bpmn_id,
    )
    audit.record(
        session,
        actor,
        "decision:proposed",
        case_id=case.id,
        object_type="decision",
        object_id=decision.id,
        details={"type": decision.decision_type, "outcome": decision.outcome},
    )
    return decision


def _appealable(meta: TaskMeta, outcome: str) -> bool:
    """Appealable per the model; ``appealableOutcomes`` narrows it to some outcomes."""
    only = meta.properties.get("appealableOutcomes")
    if not meta.appealable:
        return False
    return not only or outcome in {o.strip() for o in only.split(",")}


def _decision_detail(meta: TaskMeta, data: Mapping[str, Any]) -> str | None:
    key = meta.properties.get("decisionDetailField")
    value = data.get(key) if key else None
    return str(value) if value else None


def decide(
    session: Session, actor: Actor, *, decision_id: int, approve: bool, comment: str | None
) -> Decision:
    """Approve or return a proposed decision (four eyes) and advance the procedure."""
    decision = access.access_decision(session, actor, decision_id)
    comment = (comment or "").strip() or None
    if not approve and not comment:
        raise ValidationFailed({"comment": ["A comment is required when returning a decision."]})
    if not approve and _return_count(session, decision) >= MAX_RETURNS:
        raise Forbidden(
            f"the decision has been returned {MAX_RETURNS} times; "
            "settle it with the caseworker or escalate it to the unit manager"
        )
    case = session.get(Case, decision.case_id)
    assert case is not None
    access.require_approver(actor, decision, case)
    instance = _lock_instance(session, decision.instance_id)
    session.refresh(decision)
    if decision.status != "proposed":
        who = session.get(User, decision.decided_by_id) if decision.decided_by_id else None
        raise Conflict(
            f"the decision has already been {decision.status}",
            completed_by=who.display_name if who else None,
            case_id=case.id,
        )
    task = session.execute(
        select(OpenTask).where(OpenTask.decision_id == decision.id, OpenTask.status == "open")
    ).scalar_one_or_none()
    if task is None:
        raise Conflict("the decision is not waiting for approval", case_id=case.id)
    if not access.can_approve(actor, task):
        raise Forbidden("the approval task belongs to another person or role")
    verdict = "approved" if approve else "returned"
    # A consent override is approved outside the model: its step waits for it.
    in_model = task.bpmn_id != OVERRIDE_TASK
    if in_model:
        version = session.get(ProcessVersion, instance.version_id)
        assert version is not None
        model = model_for(version)
        meta = model.tasks[task.bpmn_id]
        wf = runtime.restore(version.sha256, version.spec_json, instance.state)
        try:
            runtime.complete_user_task(wf, task.id, {meta.approval_variable or "approval": verdict})
        except TaskNotReady as exc:
            raise Conflict("the approval is no longer pending", case_id=case.id) from exc
    now = utcnow()
    decision.status = verdict
    decision.decided_by_id = actor.user_id
    decision.decided_at = now
    decision.comment = comment
    task.status = "done"
    task.completed_at = now
    task.completed_by_id = actor.user_id
    task.assignee_id = task.assignee_id or actor.user_id
    _add_member(session, case.id, actor, "approver")
    if in_model:
        requests = runtime.take_start_requests(wf)
        _save_state(instance, wf)
        _flush_or_conflict(session)
        _sync_tasks(session, case, instance, model, runtime.ready_user_tasks(wf))
        _start_linked(session, actor, case, requests, depth=0)
    label = "godkänt" if approve else "återvisat"
    _journal(
        session,
        actor,
        case.id,
        f"Beslut {decision.decision_type} {label}",
        comment,
        kind="decision",
        task_bpmn_id=task.bpmn_id,
    )
    audit.record(
        session,
        actor,
        f"decision:{verdict}",
        case_id=case.id,
        object_type="decision",
        object_id=decision.id,
        purpose="supervisor approval",
        details={"type": decision.decision_type, "outcome": decision.outcome},
    )
    return decision


def _return_count(session: Session, decision: Decision) -> int:
    """How often proposals of this type were returned in this instance (bounds the loop)."""
    return len(
        session.execute(
            select(Decision.id).where(
                Decision.instance_id == decision.instance_id,
                Decision.decision_type == decision.decision_type,
                Decision.status == "returned",
            )
        ).all()
    )


def save_draft(
    session: Session,
    actor: Actor,
    *,
    task_id: str,
    data: Mapping[str, Any],
    after_conflict: bool = False,
) -> Draft:
    """Keep what the user typed, unvalidated, so nothing entered is lost.

    ``after_conflict``: the task was finished by someone else while the user typed; the
    submission is kept (read-only on the finished task's page) instead of being refused.
    """
    task = access.access_task(session, actor, task_id, purpose="draft")
    if task.status != "open" and not (
        after_conflict and task.role is not None and actor.has_role(task.role, task.unit_id)
    ):
        raise _already_done(session, task)
    if actor.user_id is None:
        raise Forbidden("drafts belong to a person")
    draft = session.execute(
        select(Draft).where(Draft.task_id == task.id, Draft.user_id == actor.user_id)
    ).scalar_one_or_none()
    if draft is None:
        draft = Draft(task_id=task.id, user_id=actor.user_id, data=dict(data))
        session.add(draft)
    else:
        draft.data = dict(data)
        draft.updated_at = utcnow()
    session.flush()
    audit.record(
        session,
        actor,
        "task:draft_saved",
        case_id=task.case_id,
        object_type="task",
        object_id=task.id,
    )
    return draft


def load_draft(session: Session, actor: Actor, task_id: str) -> dict[str, Any] | None:
    """The actor's own draft for a task, if any."""
    if actor.user_id is None:
        return None
    draft = session.execute(
        select(Draft).where(Draft.task_id == task_id, Draft.user_id == actor.user_id)
    ).scalar_one_or_none()
    return dict(draft.data) if draft is not None else None


def claim_task(session: Session, actor: Actor, *, task_id: str) -> OpenTask:
    """Take a task from the shared queue so colleagues see it is being handled."""
    task = access.access_task(session, actor, task_id, purpose="claim")
    _lock_instance(session, task.instance_id)
    session.refresh(task)
    if task.status != "open":
        raise _already_done(session, task)
    if task.assignee_id not in (None, actor.user_id):
        raise Conflict("the task is already claimed by someone else", case_id=task.case_id)
    task.assignee_id = actor.user_id
    _add_member(session, task.case_id, actor, "assignee")
    audit.record(
        session, actor, "task:claimed", case_id=task.case_id, object_type="task", object_id=task.id
    )
    return task


def unclaim_task(session: Session, actor: Actor, *, task_id: str) -> OpenTask:
    """Give a claimed task back to the shared queue of its role and unit."""
    task = access.access_task(session, actor, task_id, purpose="unclaim")
    _lock_instance(session, task.instance_id)
    session.refresh(task)
    if task.status != "open":
        raise _already_done(session, task)
    if task.assignee_id != actor.user_id:
        raise Forbidden("only the assignee can release a task")
    task.assignee_id = None
    audit.record(
        session,
        actor,
        "task:unclaimed",
        case_id=task.case_id,
        object_type="task",
        object_id=task.id,
    )
    return task


def store_decision_document(
    session: Session,
    actor: Actor,
    *,
    decision: Decision,
    title: str,
    filename: str,
    content: bytes,
) -> Document:
    """Keep a decision's PDF in the case record with its SHA-256.

    A decision letter to a person with a protected identity (an appealable decision) is
    held until the unit manager approves it (engine/documents.py, domain.md §4.1).
    """
    from engine import documents

    document = Document(
        case_id=decision.case_id,
        decision_id=decision.id,
        kind="decision",
        title=title[:300],
        filename=filename,
        content=content,
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
        created_by_id=actor.user_id,
    )
    session.add(document)
    case = session.get(Case, decision.case_id)
    if case is not None and documents.needs_approval(case, decision.appealable):
        documents.hold_for_approval(session, document, case)
    session.flush()
    audit.record(
        session,
        actor,
        "document:created",
        case_id=decision.case_id,
        object_type="document",
        object_id=document.id,
        details={
            "sha256": document.sha256,
            "decision_id": decision.id,
            "status": document.status,
        },
    )
    return document


def add_journal_note(
    session: Session, actor: Actor, *, case_id: int, title: str, text: str
) -> None:
    """A free journal note written by a case team member."""
    access.access_case(session, actor, case_id, purpose="journal")
    _add_member(session, case_id, actor, "journal")
    _journal(session, actor, case_id, title, text, kind="note")
    audit.record(
        session, actor, "journal:written", case_id=case_id, object_type="case", object_id=case_id
    )


def record_consent(
    session: Session,
    actor: Actor,
    *,
    case_id: int,
    purpose: str,
    form: str = "oral",
    given_on: date | None = None,
    scope: str | None = None,
    interpreter_used: bool = False,
) -> Consent:
    """Record consent for one purpose (domain.md §4.2); audited."""
    access.access_case(session, actor, case_id, purpose="consent")
    return _add_consent(session, actor, case_id, purpose, form, given_on, scope, interpreter_used)


def _add_consent(
    session: Session,
    actor: Actor,
    case_id: int,
    purpose: str,
    form: str,
    given_on: date | None,
    scope: str | None,
    interpreter_used: bool,
) -> Consent:
    consent = Consent(
        case_id=case_id,
        purpose=purpose[:60],
        given=True,
        form=form[:20] or "oral",
        given_on=given_on or utcnow().date(),
        scope=scope or None,
        interpreter_used=interpreter_used,
        recorded_by_id=actor.user_id,
    )
    session.add(consent)
    session.flush()
    audit.record(
        session,
        actor,
        "consent:recorded",
        case_id=case_id,
        object_type="consent",
        object_id=consent.id,
        details={"purpose": consent.purpose, "form": consent.form},
    )
    return consent


def withdraw_consent(session: Session, actor: Actor, *, consent_id: int) -> Consent:
    """The person withdrew a consent: it stops covering disclosures from today."""
    consent = session.get(Consent, consent_id)
    if consent is None:
        raise NotFound("consent not found")
    access.access_case(session, actor, consent.case_id, purpose="consent")
    consent.withdrawn_on = utcnow().date()
    audit.record(
        session,
        actor,
        "consent:withdrawn",
        case_id=consent.case_id,
        object_type="consent",
        object_id=consent.id,
        details={"purpose": consent.purpose},
    )
    return consent


def active_consents(session: Session, case_id: int) -> set[str]:
    """The purposes the person has consented to and not withdrawn."""
    rows = session.execute(select(Consent).where(Consent.case_id == case_id)).scalars()
    return {c.purpose for c in rows if c.active}


def _record_consents_from(
    session: Session, actor: Actor, case: Case, data: Mapping[str, Any]
) -> None:
    """A form's consent checklist (``consents_given``) becomes consent records."""
    given = data.get("consents_given")
    if not isinstance(given, list) or not given:
        return
    already = active_consents(session, case.id)
    day = _as_date(data.get("consent_date"))
    for purpose in given:
        if isinstance(purpose, str) and purpose and purpose not in already:
            _add_consent(
                session,
                actor,
                case.id,
                purpose,
                str(data.get("consent_form") or "oral"),
                day,
                str(data.get("consent_scope") or "") or None,
                bool(data.get("consent_interpreter_used")),
            )


def _as_date(value: Any) -> date | None:
    if isinstance(value, str) and value:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def _check_disclosure(
    session: Session, case: Case, task: OpenTask, meta: TaskMeta, data: Mapping[str, Any]
) -> None:
    """A disclosure needs consent or a legal ground, or an approved override (§4.2)."""
    kind = meta.properties.get("disclosure")
    if not kind:
        return
    when = meta.properties.get("disclosureWhen")
    if when and not evaluate(when, data):
        return
    ground_field = meta.properties.get("legalGroundField") or ""
    ground = str(data.get(ground_field) or "")
    if ground and ground not in NO_GROUND:
        return
    purpose = meta.properties.get("consentPurpose") or ""
    if purpose and purpose in active_consents(session, case.id):
        return
    if _approved_override(session, task):
        return
    field = ground_field or "override_reason"
    raise ValidationFailed(
        {
            field: [
                "No consent or legal ground is recorded for this disclosure. Record the "
                "person's consent, give the legal ground, or ask a supervisor to approve an "
                "override with a reason."
            ]
        }
    )


OVERRIDE_TYPE = "CONSENT_OVERRIDE"
OVERRIDE_TASK = "task_approve_consent_override"


def _approved_override(session: Session, task: OpenTask) -> bool:
    return (
        session.execute(
            select(Decision.id).where(
                Decision.proposal_task_id == task.id,
                Decision.decision_type == OVERRIDE_TYPE,
                Decision.status == "approved",
            )
        ).first()
        is not None
    )


def request_override(session: Session, actor: Actor, *, task_id: str, reason: str) -> Decision:
    """Ask a supervisor to allow a disclosure without consent or legal ground (audited)."""
    task, instance, version, case = _load_for_task(session, actor, task_id, purpose="override")
    meta = model_for(version).tasks.get(task.bpmn_id)
    if meta is None or not meta.properties.get("disclosure"):
        raise Forbidden("this step is not a disclosure")
    reason = reason.strip()
    if not reason:
        raise ValidationFailed({"override_reason": ["Give the reason for the override."]})
    pending = session.execute(
        select(Decision).where(
            Decision.proposal_task_id == task.id,
            Decision.decision_type == OVERRIDE_TYPE,
            Decision.status == "proposed",
        )
    ).scalar_one_or_none()
    if pending is not None:
        raise Conflict("an override for this step is already waiting for approval", case_id=case.id)
    decision = Decision(
        case_id=case.id,
        instance_id=instance.id,
        decision_type=OVERRIDE_TYPE,
        outcome=str(meta.properties.get("disclosure")),
        reasons=reason,
        legal_refs="",
        appealable=False,
        proposal_task_id=task.id,
        proposed_by_id=actor.user_id,
        status="proposed",
    )
    session.add(decision)
    session.flush()
    session.add(
        OpenTask(
            id=str(uuid.uuid4()),
            instance_id=instance.id,
            case_id=case.id,
            bpmn_id=OVERRIDE_TASK,
            name="Godkänn undantag från samtycke",
            form_key=None,
            role=SUPERVISOR,
            unit_id=case.unit_id,
            decision_id=decision.id,
        )
    )
    _journal(session, actor, case.id, "Undantag från samtycke begärt", reason, kind="decision")
    audit.record(
        session,
        actor,
        "disclosure:override_requested",
        case_id=case.id,
        object_type="decision",
        object_id=decision.id,
        details={"task": task.bpmn_id},
    )
    return decision
