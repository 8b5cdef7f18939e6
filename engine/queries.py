"""Read models for pages and the API: frozen dataclasses, never ORM rows.

Callers fetch a case through :mod:`engine.access` first; these functions only shape what
the actor already may see. Protected-identity subjects never expose an address or name to
anyone outside the named team (the access check already limits who gets here).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from engine import access
from engine.audit import Actor
from engine.db import utcnow
from engine.models import (
    Case,
    CaseLink,
    Consent,
    Decision,
    Document,
    JournalNote,
    OpenTask,
    ProcessInstance,
    ProcessVersion,
    Unit,
    User,
)
from engine.processes import model_for


@dataclass(frozen=True)
class TaskView:
    """A task as inboxes, case pages and the API show it."""

    id: str
    case_id: int
    case_number: str
    procedure: str
    bpmn_id: str
    name: str
    role: str | None
    unit_name: str
    form_key: str | None
    status: str
    due_at: datetime | None
    overdue: bool
    assignee_id: int | None
    assignee_name: str | None
    decision_id: int | None
    version: int
    created_at: datetime
    completed_at: datetime | None
    completed_by_name: str | None
    is_approval: bool


@dataclass(frozen=True)
class SubjectView:
    """A case subject; identity fields already decrypted for an authorised reader."""

    id: int
    name: str | None
    alias: str | None
    personnummer: str | None
    birth_date: str | None
    estimated_age: int | None
    age_doubt: bool
    gender: str | None
    citizenship: str | None
    protected_identity_type: str
    protected: bool


@dataclass(frozen=True)
class DecisionView:
    """A decision record with names resolved."""

    id: int
    case_id: int
    case_number: str
    decision_type: str
    outcome: str
    detail: str | None
    reasons: str
    legal_refs: tuple[str, ...]
    appealable: bool
    status: str
    proposed_by: str
    proposed_by_id: int
    proposed_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    comment: str | None
    document_id: int | None
    form_key: str | None
    process_version_id: int


@dataclass(frozen=True)
class JournalView:
    """One journal entry."""

    id: int
    created_at: datetime
    author: str
    kind: str
    title: str
    text: str | None


@dataclass(frozen=True)
class DocumentView:
    """A stored document (no bytes)."""

    id: int
    kind: str
    title: str
    filename: str
    sha256: str
    size: int
    created_at: datetime
    decision_id: int | None
    #: False while held for the unit manager's approval (protected identity)
    released: bool = True


@dataclass(frozen=True)
class LinkView:
    """A linked case: shown by number; ``visible`` says whether the reader may open it."""

    case_id: int
    number: str
    procedure: str
    direction: str  # "started" (this case started it) or "started_by"
    reason: str
    created_at: datetime
    visible: bool


@dataclass(frozen=True)
class ConsentView:
    """A consent for one purpose."""

    id: int
    purpose: str
    form: str
    given_on: date
    scope: str | None
    interpreter_used: bool
    withdrawn_on: date | None
    active: bool
    recorded_by: str


@dataclass(frozen=True)
class CaseView:
    """Everything the case page shows."""

    id: int
    number: str
    procedure: str
    procedure_name: str
    unit_id: int
    unit_name: str
    status: str
    secrecy_class: str
    protected: bool
    created_at: datetime
    received_at: datetime
    created_by: str
    subjects: tuple[SubjectView, ...]
    open_tasks: tuple[TaskView, ...]
    done_tasks: tuple[TaskView, ...]
    decisions: tuple[DecisionView, ...]
    journal: tuple[JournalView, ...]
    documents: tuple[DocumentView, ...]
    instance_version: int | None
    links: tuple[LinkView, ...] = ()
    consents: tuple[ConsentView, ...] = ()


class _Names:
    """Resolve user and unit names once per query."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.users: dict[int, str] = {}
        self.units: dict[int, str] = {}

    def user(self, user_id: int | None) -> str | None:
        if user_id is None:
            return None
        if user_id not in self.users:
            u = self.session.get(User, user_id)
            self.users[user_id] = u.display_name if u else f"#{user_id}"
        return self.users[user_id]

    def unit(self, unit_id: int) -> str:
        if unit_id not in self.units:
            u = self.session.get(Unit, unit_id)
            self.units[unit_id] = u.name if u else f"#{unit_id}"
        return self.units[unit_id]


def _task_view(
    t: OpenTask,
    case: Case,
    names: _Names,
    instance_version: int,
    now: datetime,
    approval: bool,
) -> TaskView:
    return TaskView(
        id=t.id,
        case_id=t.case_id,
        case_number=case.number,
        procedure=case.procedure,
        bpmn_id=t.bpmn_id,
        name=t.name,
        role=t.role,
        unit_name=names.unit(t.unit_id),
        form_key=t.form_key,
        status=t.status,
        due_at=t.due_at,
        overdue=bool(t.status == "open" and t.due_at is not None and t.due_at < now),
        assignee_id=t.assignee_id,
        assignee_name=names.user(t.assignee_id),
        decision_id=t.decision_id,
        version=instance_version,
        created_at=t.created_at,
        completed_at=t.completed_at,
        completed_by_name=names.user(t.completed_by_id),
        is_approval=approval,
    )


def task_view(session: Session, task: OpenTask) -> TaskView:
    """One task as a view (the caller has checked access)."""
    case = session.get(Case, task.case_id)
    instance = session.get(ProcessInstance, task.instance_id)
    assert case is not None and instance is not None
    return _task_view(
        task, case, _Names(session), instance.version, utcnow(), task.decision_id is not None
    )


def inbox(session: Session, actor: Actor) -> list[TaskView]:
    """My open tasks and the unclaimed tasks of my roles and units, soonest due first."""
    if actor.user_id is None:
        return []
    rows = session.execute(
        select(OpenTask).where(
            OpenTask.status == "open",
            or_(OpenTask.assignee_id == actor.user_id, OpenTask.assignee_id.is_(None)),
            OpenTask.role.in_(actor.role_names),
        )
    ).scalars()
    names = _Names(session)
    now = utcnow()
    views = []
    for t in rows:
        if not access.task_matches(actor, t):
            continue
        case = session.get(Case, t.case_id)
        instance = session.get(ProcessInstance, t.instance_id)
        if case is None or instance is None:
            continue
        views.append(_task_view(t, case, names, instance.version, now, t.decision_id is not None))
    far = datetime.max.replace(tzinfo=now.tzinfo)
    views.sort(key=lambda v: (v.due_at or far, v.created_at))
    return views


def _decision_view(d: Decision, case: Case, names: _Names, session: Session) -> DecisionView:
    doc_id = session.execute(
        select(Document.id).where(Document.decision_id == d.id).order_by(Document.id.desc())
    ).scalar()
    task = session.get(OpenTask, d.proposal_task_id)
    instance = session.get(ProcessInstance, d.instance_id)
    return DecisionView(
        id=d.id,
        case_id=d.case_id,
        case_number=case.number,
        decision_type=d.decision_type,
        outcome=d.outcome,
        detail=d.detail,
        reasons=d.reasons,
        legal_refs=tuple(r for r in d.legal_refs.split(",") if r),
        appealable=d.appealable,
        status=d.status,
        proposed_by=names.user(d.proposed_by_id) or "",
        proposed_by_id=d.proposed_by_id,
        proposed_at=d.proposed_at,
        decided_by=names.user(d.decided_by_id),
        decided_at=d.decided_at,
        comment=d.comment,
        document_id=doc_id,
        form_key=task.form_key if task else None,
        process_version_id=instance.version_id if instance else 0,
    )


def decision_view(session: Session, decision: Decision) -> DecisionView:
    """One decision as a view (the caller has checked access)."""
    case = session.get(Case, decision.case_id)
    assert case is not None
    return _decision_view(decision, case, _Names(session), session)


def decisions_of_type(session: Session, case_id: int, decision_type: str) -> list[DecisionView]:
    """Earlier proposals of one type in a case (the return history)."""
    case = session.get(Case, case_id)
    assert case is not None
    names = _Names(session)
    rows = session.execute(
        select(Decision)
        .where(Decision.case_id == case_id, Decision.decision_type == decision_type)
        .order_by(Decision.id)
    ).scalars()
    return [_decision_view(d, case, names, session) for d in rows]


def _links(session: Session, case: Case, actor: Actor | None) -> tuple[LinkView, ...]:
    rows = session.execute(
        select(CaseLink)
        .where(or_(CaseLink.from_case_id == case.id, CaseLink.to_case_id == case.id))
        .order_by(CaseLink.id)
    ).scalars()
    views = []
    for link in rows:
        started = link.from_case_id == case.id
        other = session.get(Case, link.to_case_id if started else link.from_case_id)
        if other is None:
            continue
        visible = actor is not None and access.access_reason(session, actor, other) is not None
        views.append(
            LinkView(
                case_id=other.id,
                number=other.number,
                procedure=other.procedure,
                direction="started" if started else "started_by",
                reason=link.reason,
                created_at=link.created_at,
                visible=visible,
            )
        )
    return tuple(views)


def _consents(session: Session, case: Case, names: _Names) -> tuple[ConsentView, ...]:
    rows = session.execute(
        select(Consent).where(Consent.case_id == case.id).order_by(Consent.id)
    ).scalars()
    return tuple(
        ConsentView(
            id=c.id,
            purpose=c.purpose,
            form=c.form,
            given_on=c.given_on,
            scope=c.scope,
            interpreter_used=c.interpreter_used,
            withdrawn_on=c.withdrawn_on,
            active=c.active,
            recorded_by=names.user(c.recorded_by_id) or "",
        )
        for c in rows
    )


def case_view(session: Session, case: Case, actor: Actor | None = None) -> CaseView:
    """The whole case page's data (the caller has checked access).

    With ``actor``, linked cases say whether that reader may open them.
    """
    names = _Names(session)
    now = utcnow()
    instance = (
        session.execute(
            select(ProcessInstance)
            .where(ProcessInstance.case_id == case.id)
            .order_by(ProcessInstance.id)
        )
        .scalars()
        .first()
    )
    iv = instance.version if instance else 0
    version = session.get(ProcessVersion, instance.version_id) if instance else None
    tasks = (
        session.execute(
            select(OpenTask).where(OpenTask.case_id == case.id).order_by(OpenTask.created_at)
        )
        .scalars()
        .all()
    )
    open_t = tuple(
        _task_view(t, case, names, iv, now, t.decision_id is not None)
        for t in tasks
        if t.status == "open"
    )
    done_t = tuple(
        _task_view(t, case, names, iv, now, t.decision_id is not None)
        for t in tasks
        if t.status == "done"
    )
    decisions = tuple(
        _decision_view(d, case, names, session)
        for d in session.execute(
            select(Decision).where(Decision.case_id == case.id).order_by(Decision.id)
        ).scalars()
    )
    journal = tuple(
        JournalView(
            id=j.id,
            created_at=j.created_at,
            author=names.user(j.author_id) or "",
            kind=j.kind,
            title=j.title,
            text=j.text,
        )
        for j in session.execute(
            select(JournalNote).where(JournalNote.case_id == case.id).order_by(JournalNote.id)
        ).scalars()
    )
    documents = tuple(
        DocumentView(
            id=d.id,
            kind=d.kind,
            title=d.title,
            filename=d.filename,
            sha256=d.sha256,
            size=d.size,
            created_at=d.created_at,
            decision_id=d.decision_id,
            released=d.released,
        )
        for d in session.execute(
            select(Document).where(Document.case_id == case.id).order_by(Document.id)
        ).scalars()
    )
    subjects = tuple(
        SubjectView(
            id=s.id,
            name=s.name,
            alias=s.alias,
            personnummer=s.personnummer,
            birth_date=s.birth_date,
            estimated_age=s.estimated_age,
            age_doubt=s.age_doubt,
            gender=s.gender,
            citizenship=s.citizenship,
            protected_identity_type=s.protected_identity_type,
            protected=s.is_protected,
        )
        for s in case.subjects
    )
    return CaseView(
        id=case.id,
        number=case.number,
        procedure=case.procedure,
        procedure_name=version.name if version else case.procedure,
        unit_id=case.unit_id,
        unit_name=names.unit(case.unit_id),
        status=case.status,
        secrecy_class=case.secrecy_class,
        protected=access.is_protected(case),
        created_at=case.created_at,
        received_at=case.received_at,
        created_by=names.user(case.created_by_id) or "",
        subjects=subjects,
        open_tasks=open_t,
        done_tasks=done_t,
        decisions=decisions,
        journal=journal,
        documents=documents,
        links=_links(session, case, actor),
        consents=_consents(session, case, names),
        instance_version=instance.version if instance else None,
    )


def visible_cases(session: Session, actor: Actor) -> list[Case]:
    """Cases the actor may open, newest first (for the case list)."""
    ids = access.visible_case_ids(session, actor)
    if not ids:
        return []
    return list(
        session.execute(select(Case).where(Case.id.in_(ids)).order_by(Case.id.desc())).scalars()
    )


def task_form_context(session: Session, task: OpenTask) -> dict[str, Any]:
    """The form spec and the data visible at a ready task (for prefilling its form)."""
    from engine.actions import runtime

    instance = session.get(ProcessInstance, task.instance_id)
    assert instance is not None
    version = session.get(ProcessVersion, instance.version_id)
    assert version is not None
    model = model_for(version)
    meta = model.tasks.get(task.bpmn_id)
    spec = version.forms.get(task.form_key or "", {}) if task.form_key else {}
    data: dict[str, Any] = {}
    if task.status == "open":
        wf = runtime.restore(version.sha256, version.spec_json, instance.state)
        data = runtime.task_data(wf, task.id)
    return {"spec": spec, "data": data, "meta": meta, "version": version, "instance": instance}
