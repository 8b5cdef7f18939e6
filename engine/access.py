"""The one place that decides who may see or act on a case, task, decision or document.

Rules (design.md §5): access = role (from the task's lane) ∧ unit ∧ (case team or an open
task of the actor's role). Supervisors and unit managers oversee every case of their unit.
A case whose subject has a protected identity is visible to its named team only. "Missing"
and "not yours" look the same (404) and both are written to the access log.

Break the glass (``engine.break_glass``): a time-boxed grant lets staff outside the team *read*
a case (the purposes in :data:`BREAK_GLASS_PURPOSES`), never write to it, and never a
protected-identity case. Every allowed read of a protected-identity case raises an alert for
the auditor (``engine.alerts``).
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from engine import alerts, audit
from engine.audit import Actor
from engine.db import utcnow
from engine.errors import Forbidden, NotFound
from engine.models import Case, CaseMember, Decision, Document, OpenTask
from engine.models.protection import BreakGlassGrant
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
#: What a break-the-glass grant covers: reading the case (page, API), its decisions and its
#: documents (purposes "decision <id>", "document <id>"). Writes (a journal note, a consent)
#: are left out: they would make the reader a lasting team member.
BREAK_GLASS_PURPOSES = frozenset({"view", "api"})
BREAK_GLASS_PURPOSE_PREFIXES = ("decision ", "document ")


def _read_purpose(purpose: str) -> bool:
    return purpose in BREAK_GLASS_PURPOSES or purpose.startswith(BREAK_GLASS_PURPOSE_PREFIXES)


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


def active_grant(
    session: Session, actor: Actor, case_id: int, now: datetime | None = None
) -> BreakGlassGrant | None:
    """The actor's running break-the-glass grant on the case, if any (latest expiry first)."""
    if actor.user_id is None:
        return None
    now = now or utcnow()
    return session.execute(
        select(BreakGlassGrant)
        .where(
            BreakGlassGrant.case_id == case_id,
            BreakGlassGrant.user_id == actor.user_id,
            BreakGlassGrant.expires_at > now,
            BreakGlassGrant.ended_at.is_(None),
        )
        .order_by(BreakGlassGrant.expires_at.desc())
        .limit(1)
    ).scalar_one_or_none()


def access_reason(
    session: Session, actor: Actor, case: Case, *, purpose: str = "view"
) -> str | None:
    """Why the actor may see the case ("member", "oversight", "task", "break_glass"), or None.

    A break-the-glass grant counts only for reading (``purpose``) and never on a protected case.
    """
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
    if (
        _read_purpose(purpose)
        and not is_protected(case)
        and active_grant(session, actor, case.id) is not None
    ):
        return "break_glass"
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
    reason = access_reason(session, actor, case, purpose=purpose) if case is not None else None
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
    _alert_if_protected(session, actor, case, reason)
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
            _alert_if_protected(session, actor, case, "task")
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
    _alert_if_protected(session, actor, session.get(Case, task.case_id), "task")
    return task


def _alert_if_protected(session: Session, actor: Actor, case: Case | None, reason: str) -> None:
    """security.md §2.5: every access to a protected identity is reviewed with priority."""
    if case is not None and is_protected(case):
        alerts.raise_alert(
            session, actor, alerts.PROTECTED_ACCESS, case_id=case.id, details={"reason": reason}
        )


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
    granted = session.execute(
        select(Case)
        .join(BreakGlassGrant, BreakGlassGrant.case_id == Case.id)
        .where(
            BreakGlassGrant.user_id == actor.user_id,
            BreakGlassGrant.expires_at > utcnow(),
            BreakGlassGrant.ended_at.is_(None),
        )
    ).scalars()
    ids.update(c.id for c in granted if not is_protected(c))
    return sorted(ids)
