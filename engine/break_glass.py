"""Break the glass: staff outside a case's team open it in an emergency (design.md §5).

The user states a reason (and the web layer has them confirm who they are first); they then
get :data:`GRANT_MINUTES` of read access to that one case (``engine.access`` honours the
grant for reading only). At once:

* the case's journal gets an entry, so the team sees it on the case page;
* the case's owner (who registered it) and the unit's supervisors get a notice in their list
  of emergency accesses (and an e-mail through ``engine.notifications`` when that exists);
* a ``case:break_glass`` entry lands in the access log, where the auditor's signals and every
  sampled review include it, and an alert waits in the auditor's alert list.

Protected identity (security.md §2.5: "access only for explicitly assigned staff") cannot be
opened this way: the unit manager names the person on the team instead. Such an attempt is
refused with the same words as an unknown case number (nothing tells the case exists) and
raises an alert. Framework-free; the caller commits.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import access, alerts, audit
from engine.audit import Actor
from engine.db import utcnow
from engine.errors import NotFound, ValidationFailed
from engine.models import Case, JournalNote, RoleAssignment, User
from engine.models.protection import BreakGlassGrant, BreakGlassNotice
from engine.roles import (
    CASEWORKER,
    COMMITTEE,
    COORDINATOR,
    DV_TEAM,
    SUPERVISOR,
    UNIT_MANAGER,
)

#: Staff who may break the glass: social services staff who work cases. Partners, process
#: owners, auditors and administrators never read case records this way.
BREAK_GLASS_ROLES = frozenset(
    {CASEWORKER, DV_TEAM, SUPERVISOR, UNIT_MANAGER, COORDINATOR, COMMITTEE}
)
GRANT_MINUTES = 60
REASON_MIN = 15
REASON_MAX = 1000
CASE_NUMBER_MAX = 40
#: How far back the notice list and the case banner look.
NOTICE_DAYS = 30
STOCKHOLM = ZoneInfo("Europe/Stockholm")

ACTION = "case:break_glass"
REFUSED_ACTION = "case:break_glass_refused"

#: Messages the web layer translates (the engine's words are English).
MSG_REASON_SHORT = f"Write the reason in at least {REASON_MIN} characters."
MSG_REASON_LONG = f"The reason can be at most {REASON_MAX} characters."
MSG_CASE_MISSING = "Enter the case number."
MSG_NOT_AVAILABLE = "No case with this number can be opened with emergency access."


@dataclass(frozen=True)
class Outcome:
    """What happened to a request: a grant, access the user had already, or a refusal."""

    case_id: int | None = None
    grant_id: int | None = None
    expires_at: datetime | None = None
    already: str | None = None
    refused: bool = False


@dataclass(frozen=True)
class GrantView:
    """A grant as the pages show it."""

    id: int
    case_id: int
    case_number: str
    user_name: str
    reason: str
    granted_at: datetime
    expires_at: datetime
    active: bool


@dataclass(frozen=True)
class NoticeView:
    """A notice to the owner or a supervisor: who opened which case, when and why."""

    grant: GrantView
    recipient_role: str


def may_break_glass(actor: Actor) -> bool:
    """True for staff roles that may ask for emergency access."""
    return actor.user_id is not None and bool(actor.role_names & BREAK_GLASS_ROLES)


def validate(case_number: str, reason: str) -> dict[str, list[str]]:
    """Field errors of a request (empty when it may go on)."""
    errors: dict[str, list[str]] = {}
    if not case_number.strip():
        errors["case_number"] = [MSG_CASE_MISSING]
    elif len(case_number.strip()) > CASE_NUMBER_MAX:
        errors["case_number"] = [MSG_NOT_AVAILABLE]
    text = reason.strip()
    if len(text) < REASON_MIN:
        errors["reason"] = [MSG_REASON_SHORT]
    elif len(text) > REASON_MAX:
        errors["reason"] = [MSG_REASON_LONG]
    return errors


def _refuse(session: Session, actor: Actor, case: Case | None, number: str, why: str) -> Outcome:
    audit.record(
        session,
        actor,
        REFUSED_ACTION,
        case_id=case.id if case else None,
        object_type="case",
        object_id=case.id if case else None,
        outcome="denied",
        purpose="emergency access",
        details={"why": why, "number_length": len(number)},
    )
    if case is not None and why == "protected":
        alerts.raise_alert(
            session, actor, alerts.BREAK_GLASS_REFUSED, case_id=case.id, details={"why": why}
        )
    return Outcome(case_id=None, refused=True)


def request_access(
    session: Session, actor: Actor, *, case_number: str, reason: str, now: datetime | None = None
) -> Outcome:
    """Grant emergency read access to the case with this number, or refuse (both audited).

    The caller has checked fresh authentication. Raises ValidationFailed for a bad form.
    """
    errors = validate(case_number, reason)
    if errors:
        raise ValidationFailed(errors)
    if not may_break_glass(actor):
        raise NotFound("emergency access is not available")
    now = now or utcnow()
    number = case_number.strip()
    case = session.execute(select(Case).where(Case.number == number)).scalar_one_or_none()
    if case is None:
        return _refuse(session, actor, None, number, "unknown")
    if access.is_protected(case):
        return _refuse(session, actor, case, number, "protected")
    already = access.access_reason(session, actor, case)
    if already is not None and already != "break_glass":
        return Outcome(case_id=case.id, already=already)
    grant = BreakGlassGrant(
        case_id=case.id,
        user_id=actor.user_id,
        reason=reason.strip(),
        granted_at=now,
        expires_at=now + timedelta(minutes=GRANT_MINUTES),
        source_ip=actor.source_ip,
    )
    session.add(grant)
    session.flush()
    audit.record(
        session,
        actor,
        ACTION,
        case_id=case.id,
        object_type="case",
        object_id=case.id,
        purpose="emergency access",
        details={"grant_id": grant.id, "minutes": GRANT_MINUTES},
    )
    _tell_the_team(session, actor, case, grant)
    alerts.raise_alert(
        session, actor, alerts.BREAK_GLASS, case_id=case.id, details={"grant_id": grant.id}
    )
    return Outcome(case_id=case.id, grant_id=grant.id, expires_at=grant.expires_at)


def _recipients(session: Session, actor: Actor, case: Case) -> list[tuple[int, str]]:
    """(user id, "owner"/"supervisor"): the case's registrar and the unit's supervisors
    (its unit managers when it has no supervisor), never the requester."""
    chosen: dict[int, str] = {}
    owner = session.get(User, case.created_by_id)
    if owner is not None and owner.active:
        chosen[owner.id] = "owner"
    for role in (SUPERVISOR, UNIT_MANAGER):
        rows = session.execute(
            select(User)
            .join(RoleAssignment, RoleAssignment.user_id == User.id)
            .where(
                RoleAssignment.role == role,
                (RoleAssignment.unit_id == case.unit_id) | RoleAssignment.unit_id.is_(None),
                User.active.is_(True),
            )
            .order_by(User.id)
        ).scalars()
        found = [u for u in rows if u.id != actor.user_id]
        for user in found:
            chosen.setdefault(user.id, "supervisor")
        if found:
            break
    chosen.pop(actor.user_id or -1, None)
    return sorted(chosen.items())


def _local(moment: datetime) -> str:
    return moment.astimezone(STOCKHOLM).strftime("%Y-%m-%d %H:%M")


def _tell_the_team(session: Session, actor: Actor, case: Case, grant: BreakGlassGrant) -> None:
    user = session.get(User, actor.user_id)
    name = user.display_name if user else actor.username
    session.add(
        JournalNote(
            case_id=case.id,
            author_id=actor.user_id,
            created_at=grant.granted_at,
            kind="break_glass",
            title="Nödåtkomst (bryt glaset) / Emergency access",
            text=(
                f"{name} öppnade ärendet med nödåtkomst {_local(grant.granted_at)}–"
                f"{_local(grant.expires_at)}.\nSkäl: {grant.reason}"
            ),
        )
    )
    recipients = _recipients(session, actor, case)
    for user_id, role in recipients:
        session.add(
            BreakGlassNotice(
                grant_id=grant.id, user_id=user_id, recipient_role=role, created_at=grant.granted_at
            )
        )
    session.flush()
    _notify(session, case, grant, [uid for uid, _ in recipients])


def _notify(session: Session, case: Case, grant: BreakGlassGrant, user_ids: list[int]) -> None:
    """Hand the notice to the e-mail notifications of issue 6, when that module exists.

    The message names the case number only (no person, no reason): e-mail leaves the system.
    """
    try:
        module: Any = importlib.import_module("engine.notifications")
    except ImportError:
        return
    send = getattr(module, "notify_break_glass", None)
    if callable(send):
        send(session, case_id=case.id, grant_id=grant.id, user_ids=user_ids)


def end_access(session: Session, actor: Actor, grant_id: int, now: datetime | None = None) -> None:
    """The user closes their own emergency access before it runs out (audited)."""
    grant = session.get(BreakGlassGrant, grant_id) if 1 <= grant_id <= access.MAX_ID else None
    now = now or utcnow()
    if grant is None or grant.user_id != actor.user_id:
        raise NotFound("grant not found")
    if grant.ended_at is None and grant.expires_at > now:
        grant.ended_at = now
        audit.record(
            session,
            actor,
            "case:break_glass_ended",
            case_id=grant.case_id,
            object_type="case",
            object_id=grant.case_id,
            purpose="emergency access",
            details={"grant_id": grant.id},
        )


def _view(session: Session, grant: BreakGlassGrant, now: datetime) -> GrantView:
    case = session.get(Case, grant.case_id)
    user = session.get(User, grant.user_id)
    return GrantView(
        id=grant.id,
        case_id=grant.case_id,
        case_number=case.number if case else f"#{grant.case_id}",
        user_name=user.display_name if user else f"#{grant.user_id}",
        reason=grant.reason,
        granted_at=grant.granted_at,
        expires_at=grant.ended_at or grant.expires_at,
        active=grant.ended_at is None and grant.expires_at > now,
    )


def my_grants(session: Session, actor: Actor, now: datetime | None = None) -> list[GrantView]:
    """The actor's own grants of the last :data:`NOTICE_DAYS` days, newest first."""
    now = now or utcnow()
    rows = session.execute(
        select(BreakGlassGrant)
        .where(
            BreakGlassGrant.user_id == actor.user_id,
            BreakGlassGrant.granted_at >= now - timedelta(days=NOTICE_DAYS),
        )
        .order_by(BreakGlassGrant.id.desc())
    ).scalars()
    return [_view(session, g, now) for g in rows]


def notices_for(session: Session, actor: Actor, now: datetime | None = None) -> list[NoticeView]:
    """Emergency accesses to the actor's cases or unit of the last days (read is logged)."""
    now = now or utcnow()
    rows = session.execute(
        select(BreakGlassNotice, BreakGlassGrant)
        .join(BreakGlassGrant, BreakGlassGrant.id == BreakGlassNotice.grant_id)
        .where(
            BreakGlassNotice.user_id == actor.user_id,
            BreakGlassNotice.created_at >= now - timedelta(days=NOTICE_DAYS),
        )
        .order_by(BreakGlassNotice.id.desc())
    ).all()
    views = [
        NoticeView(_view(session, grant, now), notice.recipient_role) for notice, grant in rows
    ]
    if views:
        audit.record(
            session,
            actor,
            "break_glass:notices_viewed",
            purpose="follow-up of emergency access",
            details={"grants": [v.grant.id for v in views][:50]},
        )
    return views


def case_grants(session: Session, case_id: int, now: datetime | None = None) -> list[GrantView]:
    """The case's grants of the last :data:`NOTICE_DAYS` days (for the case page banner; the
    caller has checked that the reader may see the case)."""
    now = now or utcnow()
    rows = session.execute(
        select(BreakGlassGrant)
        .where(
            BreakGlassGrant.case_id == case_id,
            BreakGlassGrant.granted_at >= now - timedelta(days=NOTICE_DAYS),
        )
        .order_by(BreakGlassGrant.id.desc())
    ).scalars()
    return [_view(session, g, now) for g in rows]


def grant_reasons(session: Session, grant_ids: list[int]) -> dict[int, str]:
    """The stated reasons of some grants (for the auditor's alert list)."""
    if not grant_ids:
        return {}
    rows = session.execute(
        select(BreakGlassGrant).where(BreakGlassGrant.id.in_(grant_ids))
    ).scalars()
    return {g.id: g.reason for g in rows}
