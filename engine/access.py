"""The one place that decides who may see or act on a case, task, decision or document.

Rules (design.md §5): access = role (from the task's lane) ∧ unit ∧ (case team or an open
task of the actor's role). Supervisors and unit managers oversee every case of their unit.
A case whose subject has a protected identity is visible to its named team only. "Missing"
and "not yours" look the same (404) and both are written to the access log.
"""

from __future__ import annotations

import re

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from engine import audit
from engine.audit import Actor
from engine.errors import Forbidden, NotFound
from engine.models import Case, CaseMember, Decision, Document, OpenTask
from engine.roles import (
    APPROVER_ROLES,
    EXTERNAL_ROLES,
    OVERSIGHT_ROLES,
    SUPERVISOR,
    UNIT_MANAGER,
)

#: Largest id a database integer column holds on every backend (PostgreSQL ``integer``).
MAX_ID = 2**31 - 1
#: Task ids are SpiffWorkflow UUIDs.
TASK_ID = re.compile(r"[0-9a-fA-F-]{1,36}")


def _valid_id(value: int) -> bool:
    return 1 <= value <= MAX_ID


def _is_member(session: Session, actor: Actor, case_id: int) -> bool:
    return (
        actor.user_id is not None
        and session.execute(
            select(CaseMember.id).where(
                CaseMember.case_id == case_id, CaseMember.user_id == actor.user_id
            )
        ).first()
        is not None
    )


def task_matches(actor: Actor, task: OpenTask) -> bool:
    """True if the actor's roles cover the task's lane and unit, and it is theirs or free."""
    if task.role is None or not actor.has_role(task.role, task.unit_id):
        return False
    return task.assignee_id is None or task.assignee_id == actor.user_id


def can_approve(actor: Actor, task: OpenTask) -> bool:
    """May the actor complete this approval task? Its lane's role, or the unit manager
    standing in for the supervisor (escalation)."""
    if task.status != "open":
        return False
    if task_matches(actor, task):
        return True
    return (
        task.role == SUPERVISOR
        and actor.has_role(UNIT_MANAGER, task.unit_id)
        and task.assignee_id in (None, actor.user_id)
    )


def _has_open_task(session: Session, actor: Actor, case_id: int) -> bool:
    tasks = session.execute(
        select(OpenTask).where(OpenTask.case_id == case_id, OpenTask.status == "open")
    ).scalars()
    return any(task_matches(actor, t) for t in tasks)


def is_protected(case: Case) -> bool:
    """True when any subject of the case has a protected identity."""
    return case.secrecy_class == "PROTECTED_IDENTITY" or any(s.is_protected for s in case.subjects)


def access_reason(session: Session, actor: Actor, case: Case) -> str | None:
    """Why the actor may see the case ("member", "oversight", "task"), or None."""
    if actor.user_id is None:
        return None
    if actor.role_names and actor.role_names <= EXTERNAL_ROLES:
        # Partners (the housing company) work their own task forms only; the case record,
        # its journal and decisions stay inside social services (OSL 26:1).
        return None
    if _is_member(session, actor, case.id):
        return "member"
    if not is_protected(case) and any(actor.has_role(r, case.unit_id) for r in OVERSIGHT_ROLES):
        return "oversight"
    if _has_open_task(session, actor, case.id):
        return "task"
    return None


def _deny(
    session: Session, actor: Actor, kind: str, object_id: object, case_id: int | None
) -> NotFound:
    """Log a refused read and return the NotFound to raise.

    The exception carries what was refused, so a caller that rolls back the transaction
    (the web layer does, for every refusal) can write the entry again.
    """
    audit.record(
        session,
        actor,
        f"{kind}:denied",
        case_id=case_id,
        object_type=kind,
        object_id=str(object_id),
        outcome="denied",
    )
    return NotFound(
        f"{kind} not found", denied_kind=kind, denied_id=str(object_id), denied_case_id=case_id
    )


def access_case(session: Session, actor: Actor, case_id: int, *, purpose: str = "view") -> Case:
    """Load a case the actor may see, and log the read; otherwise NotFound (also logged)."""
    case = session.get(Case, case_id) if _valid_id(case_id) else None
    reason = access_reason(session, actor, case) if case is not None else None
    if case is None or reason is None:
        raise _deny(session, actor, "case", case_id, case.id if case else None)
    audit.record(
        session,
        actor,
        "case:viewed",
        case_id=case.id,
        object_type="case",
        object_id=case.id,
        purpose=f"{purpose} ({reason})",
    )
    return case


def access_task(session: Session, actor: Actor, task_id: str, *, purpose: str = "view") -> OpenTask:
    """Load a task the actor may act on (open, their role and unit, free or theirs)."""
    task = session.get(OpenTask, task_id) if TASK_ID.fullmatch(task_id) else None
    allowed = task is not None and task.status == "open" and task_matches(actor, task)
    if task is not None and not allowed and task.status != "open":
        # A finished task stays visible to whoever may see its case (for the 409 page).
        case = session.get(Case, task.case_id)
        if case is not None and access_reason(session, actor, case) is not None:
            audit.record(
                session,
                actor,
                "task:viewed",
                case_id=task.case_id,
                object_type="task",
                object_id=task.id,
                purpose=purpose,
            )
            return task
    if task is None or not allowed:
        raise _deny(session, actor, "task", task_id, task.case_id if task else None)
    audit.record(
        session,
        actor,
        "task:viewed",
        case_id=task.case_id,
        object_type="task",
        object_id=task.id,
        purpose=purpose,
    )
    return task


def access_decision(session: Session, actor: Actor, decision_id: int) -> Decision:
    """Load a decision whose case the actor may see."""
    decision = session.get(Decision, decision_id) if _valid_id(decision_id) else None
    if decision is None:
        raise _deny(session, actor, "decision", decision_id, None)
    access_case(session, actor, decision.case_id, purpose=f"decision {decision_id}")
    return decision


def require_approver(actor: Actor, decision: Decision, case: Case) -> None:
    """Four-eyes control: an approver role for the unit, and never the proposer."""
    if not any(actor.has_role(r, case.unit_id) for r in APPROVER_ROLES):
        raise Forbidden("only a supervisor or unit manager may approve or return decisions")
    if decision.proposed_by_id == actor.user_id:
        raise Forbidden("a decision must be approved by someone other than its proposer")


def access_document(session: Session, actor: Actor, document_id: int) -> Document:
    """Load a document whose case the actor may see; the read is logged by the caller."""
    document = session.get(Document, document_id) if _valid_id(document_id) else None
    if document is None:
        raise _deny(session, actor, "document", document_id, None)
    access_case(session, actor, document.case_id, purpose=f"document {document_id}")
    return document


def visible_case_ids(session: Session, actor: Actor) -> list[int]:
    """Ids of cases the actor may see (for lists); protected cases only as team member."""
    if actor.user_id is None or (actor.role_names and actor.role_names <= EXTERNAL_ROLES):
        return []
    member = select(CaseMember.case_id).where(CaseMember.user_id == actor.user_id)
    oversight_units = {u for r in OVERSIGHT_ROLES for u in actor.units_for(r)}
    conditions: list[ColumnElement[bool]] = [Case.id.in_(member)]
    if None in oversight_units:
        conditions.append(Case.secrecy_class != "PROTECTED_IDENTITY")
    elif oversight_units:
        conditions.append(
            Case.unit_id.in_([u for u in oversight_units if u is not None])
            & (Case.secrecy_class != "PROTECTED_IDENTITY")
        )
    ids = set(session.execute(select(Case.id).where(or_(*conditions))).scalars())
    open_tasks = session.execute(select(OpenTask).where(OpenTask.status == "open")).scalars()
    ids.update(t.case_id for t in open_tasks if task_matches(actor, t))
    return sorted(ids)
