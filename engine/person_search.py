"""Exact personnummer lookup for staff, through the keyed blind index (issue 4).

* The caller passes the number already validated and normalised (12 digits, checksum and date
  checked by ``forms.fields.normalize_personnummer``); only its blind index is compared and
  logged, never the number.
* Results are the cases the actor may open anyway (``engine.access.visible_case_ids``): the
  search finds nothing a user could not reach through their case list (SoLPuL: no global
  person search over other units' cases). A name is left out for a protected identity.
* Anti-automation (security.md §1 row 42, §6 case 20): at most :data:`SEARCH_LIMIT` searches
  per user in :data:`SEARCH_WINDOW`; past that every search is refused (the web layer answers
  429), audited as denied, and a ``mass_lookup`` alert waits for the auditor.

Framework-free; the caller commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import access, alerts, audit, crypto
from engine.audit import Actor
from engine.break_glass import BREAK_GLASS_ROLES
from engine.db import utcnow
from engine.models import AuditEntry, Case, Subject, Unit

#: Who may search: the staff who work cases (the same roles as break the glass).
SEARCH_ROLES = BREAK_GLASS_ROLES
SEARCH_LIMIT = 100
SEARCH_WINDOW = timedelta(minutes=5)
ACTION = "person:searched"
THROTTLED_ACTION = "person:search_throttled"
PNR_LENGTH = 12


@dataclass(frozen=True)
class PersonHit:
    """One case in which the person is a subject."""

    case_id: int
    case_number: str
    procedure: str
    unit_name: str
    status: str
    subject_role: str
    label: str | None
    protected: bool


@dataclass(frozen=True)
class SearchResult:
    """The hits, or ``throttled`` (then no hits and a retry time)."""

    hits: tuple[PersonHit, ...] = ()
    throttled: bool = False
    retry_after: int = 0


def _indexes(personnummer12: str, active: str) -> list[str]:
    """The number's blind index under every configured key (rows not yet rotated keep the
    index of an old key), the active key's first."""
    found = crypto.blind_index_candidates(personnummer12, purpose="personnummer")
    return [active, *(index for index in found if index != active)]


def may_search(actor: Actor) -> bool:
    """True for the staff roles allowed to look a person up."""
    return actor.user_id is not None and bool(actor.role_names & SEARCH_ROLES)


def recent_searches(session: Session, actor: Actor, now: datetime) -> tuple[int, datetime | None]:
    """How many searches the actor made within the window, and when the oldest of them was."""
    row = session.execute(
        select(func.count(), func.min(AuditEntry.ts)).where(
            AuditEntry.action == ACTION,
            AuditEntry.actor_id == actor.user_id,
            AuditEntry.ts >= now - SEARCH_WINDOW,
        )
    ).one()
    return int(row[0]), row[1]


def search(
    session: Session, actor: Actor, personnummer12: str, now: datetime | None = None
) -> SearchResult:
    """The visible cases of the person with this normalised personnummer (audited)."""
    if not may_search(actor):
        raise PermissionError("only case-working staff may search for a person")
    if len(personnummer12) != PNR_LENGTH or not personnummer12.isdigit():
        raise ValueError("pass the normalised 12-digit personnummer")
    now = now or utcnow()
    count, oldest = recent_searches(session, actor, now)
    index = crypto.blind_index(personnummer12, purpose="personnummer")
    if count >= SEARCH_LIMIT:
        retry = SEARCH_WINDOW - (now - oldest) if oldest is not None else SEARCH_WINDOW
        audit.record(
            session,
            actor,
            THROTTLED_ACTION,
            object_type="person",
            outcome="denied",
            purpose="person search",
            details={"searches": count, "window_minutes": int(SEARCH_WINDOW.total_seconds() // 60)},
        )
        alerts.raise_alert(
            session,
            actor,
            alerts.MASS_LOOKUP,
            details={"limit": SEARCH_LIMIT, "window_minutes": SEARCH_WINDOW.seconds // 60},
        )
        return SearchResult(throttled=True, retry_after=max(1, int(retry.total_seconds()) + 1))
    visible = set(access.visible_case_ids(session, actor))
    subjects = session.execute(
        select(Subject)
        .where(Subject.personnummer_index.in_(_indexes(personnummer12, index)))
        .order_by(Subject.case_id)
    ).scalars()
    hits: list[PersonHit] = []
    for subject in subjects:
        if subject.case_id not in visible:
            continue
        case = session.get(Case, subject.case_id)
        if case is None:
            continue
        unit = session.get(Unit, case.unit_id)
        shielded = subject.is_protected or access.is_protected(case)
        hits.append(
            PersonHit(
                case_id=case.id,
                case_number=case.number,
                procedure=case.procedure,
                unit_name=unit.name if unit else "",
                status=case.status,
                subject_role=subject.role,
                label=None if shielded else (subject.name or subject.alias),
                protected=shielded,
            )
        )
    audit.record(
        session,
        actor,
        ACTION,
        object_type="person",
        purpose="person search",
        details={
            "query_hash": index,
            "results": len(hits),
            "case_ids": [h.case_id for h in hits][:50],
        },
    )
    return SearchResult(hits=tuple(hits))
