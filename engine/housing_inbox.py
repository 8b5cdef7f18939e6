"""The housing company contact's view of the notifications addressed to it (procedure C).

Why separate from the case pages: the contact is a partner outside social services
(OSL 26:1); it never opens a case record. Only whitelisted property facts and the state
of its own steps are read here, so no personal data can reach its page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import access, audit
from engine.audit import Actor
from engine.db import utcnow
from engine.document_kinds import load_record
from engine.errors import Forbidden
from engine.models import (
    Case,
    OpenTask,
)
from engine.roles import HOUSING_CONTACT

# ------------------------------------------------------------ the housing contact's view

#: Property facts the housing company may see about a notification addressed to it.
HOUSING_VIEW_KEYS = ("address", "postal_code", "flat_number", "huge_property_id")


@dataclass(frozen=True)
class HousingTask:
    """An open step of the housing contact (acknowledge, return a status)."""

    id: str
    name: str
    due_at: datetime | None
    overdue: bool


@dataclass(frozen=True)
class HousingNotice:
    """One notification to the housing company: property facts and its progress only."""

    reference: str
    address: str
    postal_code: str
    flat_number: str
    huge_property_id: str
    letter_sent_on: str
    acknowledged: bool
    acknowledged_on: str
    status: str
    status_on: str
    open_tasks: tuple[HousingTask, ...]


def housing_notifications(session: Session, actor: Actor) -> list[HousingNotice]:
    """The notifications addressed to the housing contact (its steps in housing cases).

    No case record is opened: only whitelisted property facts and the state of the
    contact's own steps are read, so no personal data can reach this view.
    """
    if not actor.has_role(HOUSING_CONTACT):
        raise Forbidden("only the housing company contact has notifications")
    rows = session.execute(
        select(OpenTask)
        .where(OpenTask.role == HOUSING_CONTACT, OpenTask.status.in_(("open", "done")))
        .order_by(OpenTask.created_at)
    ).scalars()
    by_case: dict[int, list[OpenTask]] = {}
    for row in rows:
        if actor.has_role(HOUSING_CONTACT, row.unit_id):
            by_case.setdefault(row.case_id, []).append(row)
    now = utcnow()
    notices = []
    for case_id, tasks in by_case.items():
        case = session.get(Case, case_id)
        if case is None or case.procedure != "housing_notification":
            continue
        rec = load_record(session, case)
        statuses = [
            t for t in tasks if t.status == "done" and t.form_key == "housing_status_return"
        ]
        acknowledged = any(
            t.status == "done" and t.form_key == "housing_acknowledgement" for t in tasks
        )
        notices.append(
            HousingNotice(
                reference=case.number,
                address=rec.text("address"),
                postal_code=rec.text("postal_code"),
                flat_number=rec.text("flat_number"),
                huge_property_id=rec.text("huge_property_id"),
                letter_sent_on=rec.text("letter_sent_date"),
                acknowledged=acknowledged and bool(rec.data.get("acknowledged")),
                acknowledged_on=rec.text("acknowledged_date") if acknowledged else "",
                status=rec.text("housing_status") if statuses else "",
                status_on=rec.text("housing_status_date") if statuses else "",
                open_tasks=tuple(
                    HousingTask(
                        id=t.id,
                        name=t.name,
                        due_at=t.due_at,
                        overdue=t.due_at is not None and t.due_at < now,
                    )
                    for t in tasks
                    if t.status == "open" and access.task_matches(actor, t)
                ),
            )
        )
    audit.record(
        session,
        actor,
        "housing:listed",
        object_type="housing_notifications",
        details={"count": len(notices)},
    )
    return notices


__all__ = ["HousingNotice", "HousingTask", "housing_notifications"]
