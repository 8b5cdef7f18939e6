"""Security alerts for the auditor: every access to a protected-identity case, every break of
the glass and every mass lookup raises one (security.md §2.5, §1 row 42).

An alert is a work item on top of the access log (which holds every entry anyway): it stays
open until an auditor acknowledges it. Repeats of one kind by one user on one case within
:data:`REPEAT_WINDOW` are counted on the open alert instead of adding rows.

Framework-free; the caller commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import audit
from engine.audit import Actor
from engine.db import utcnow
from engine.errors import Forbidden, NotFound
from engine.models import Case
from engine.models.protection import SecurityAlert
from engine.roles import AUDITOR

PROTECTED_ACCESS = "protected_access"
BREAK_GLASS = "break_glass"
BREAK_GLASS_REFUSED = "break_glass_refused"
MASS_LOOKUP = "mass_lookup"
KINDS = (PROTECTED_ACCESS, BREAK_GLASS, BREAK_GLASS_REFUSED, MASS_LOOKUP)
REPEAT_WINDOW = timedelta(hours=1)
MAX_LISTED = 200


@dataclass(frozen=True)
class AlertView:
    """One alert as the auditor's list shows it."""

    id: int
    kind: str
    actor_name: str | None
    case_id: int | None
    case_number: str | None
    created_at: datetime
    last_at: datetime
    count: int
    details: tuple[tuple[str, str], ...]
    acknowledged: bool


def raise_alert(
    session: Session,
    actor: Actor,
    kind: str,
    *,
    case_id: int | None = None,
    details: Mapping[str, Any] | None = None,
) -> SecurityAlert:
    """Open an alert (or count a repeat on the open one) for the auditor."""
    now = utcnow()
    open_alert = session.execute(
        select(SecurityAlert)
        .where(
            SecurityAlert.kind == kind,
            SecurityAlert.actor_id == actor.user_id,
            SecurityAlert.case_id.is_(None)
            if case_id is None
            else SecurityAlert.case_id == case_id,
            SecurityAlert.acknowledged_at.is_(None),
            SecurityAlert.last_at >= now - REPEAT_WINDOW,
        )
        .order_by(SecurityAlert.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if open_alert is not None:
        open_alert.count += 1
        open_alert.last_at = now
        session.flush()
        return open_alert
    alert = SecurityAlert(
        kind=kind,
        actor_id=actor.user_id,
        actor_name=actor.username[:100],
        case_id=case_id,
        created_at=now,
        last_at=now,
        count=1,
        details=dict(details or {}),
    )
    session.add(alert)
    session.flush()
    return alert


def _require_auditor(actor: Actor) -> None:
    if not actor.has_role(AUDITOR):
        raise Forbidden("only an auditor may read the alerts")


def list_alerts(session: Session, actor: Actor, *, include_done: bool = False) -> list[AlertView]:
    """Open alerts (and, on request, acknowledged ones), newest first; the look is logged."""
    _require_auditor(actor)
    query = select(SecurityAlert).order_by(SecurityAlert.last_at.desc(), SecurityAlert.id.desc())
    if not include_done:
        query = query.where(SecurityAlert.acknowledged_at.is_(None))
    rows = list(session.execute(query.limit(MAX_LISTED)).scalars())
    numbers: dict[int, str] = {}
    for row in rows:
        if row.case_id is not None and row.case_id not in numbers:
            case = session.get(Case, row.case_id)
            numbers[row.case_id] = case.number if case else f"#{row.case_id}"
    audit.record(
        session, actor, "audit:alerts_viewed", purpose="log review", details={"count": len(rows)}
    )
    return [
        AlertView(
            id=row.id,
            kind=row.kind,
            actor_name=row.actor_name,
            case_id=row.case_id,
            case_number=numbers.get(row.case_id) if row.case_id is not None else None,
            created_at=row.created_at,
            last_at=row.last_at,
            count=row.count,
            details=tuple(sorted((str(k), str(v)) for k, v in (row.details or {}).items())),
            acknowledged=row.acknowledged_at is not None,
        )
        for row in rows
    ]


def open_alert_count(session: Session, kind: str | None = None) -> int:
    """How many alerts wait for an auditor (for a badge)."""
    query = select(SecurityAlert.id).where(SecurityAlert.acknowledged_at.is_(None))
    if kind is not None:
        query = query.where(SecurityAlert.kind == kind)
    return len(list(session.execute(query).scalars()))


def acknowledge(session: Session, actor: Actor, alert_id: int) -> None:
    """An auditor has looked at the alert (audited)."""
    _require_auditor(actor)
    alert = session.get(SecurityAlert, alert_id) if 1 <= alert_id <= 2**31 - 1 else None
    if alert is None:
        raise NotFound("alert not found")
    if alert.acknowledged_at is not None:
        return
    alert.acknowledged_at = utcnow()
    alert.acknowledged_by_id = actor.user_id
    audit.record(
        session,
        actor,
        "audit:alert_acknowledged",
        case_id=alert.case_id,
        object_type="alert",
        object_id=alert.id,
        purpose="log review",
        details={"kind": alert.kind},
    )
