"""The notification sweep: queue what is due into the outbox, then send each row once.

Run by the timer worker (``lotsen worker``, ``lotsen run-timers``) and ``lotsen notify``; it
reads the open-task rows and never hooks into ``engine.actions``.

1. **Queue.** For every open task: a ``assigned`` notification while the task is new (created
   within ``assigned_within``), ``due_soon`` when its deadline falls within the lead time and
   ``overdue`` once it has passed. Recipients: the assignee, or every active user holding the
   task's role for its unit (on a protected-identity case only the named team). Users who
   opted out of a kind are left out, except for reminders of a statutory deadline. Rows are
   inserted with ``ON CONFLICT DO NOTHING`` on the (task, kind, user) unique constraint, so
   two workers queuing the same notification produce one row.
2. **Send.** Claim a due row (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite a
   conditional update under ``BEGIN IMMEDIATE``) and give it a lease, commit, send outside
   any transaction, then mark it sent and write ``notification:sent`` (recipient user id,
   case, kind; never the text or address). A failed send is retried with exponential
   back-off (``RETRY_BASE`` doubling up to ``RETRY_MAX``), indefinitely: nothing is dropped.
   Lock order as everywhere: the audit-chain head first, then the row.

Exactly once per (task, kind, recipient): the unique row, and the claim. The one gap left is
a crash between the SMTP server accepting a message and the "sent" commit: the lease then
runs out and the message is sent again (at least once at that boundary, never zero times).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, lazyload, sessionmaker

from engine import audit
from engine.access import is_protected
from engine.audit import SYSTEM
from engine.db import clock
from engine.models import (
    AuditHead,
    Case,
    CaseMember,
    OpenTask,
    ProcessInstance,
    ProcessVersion,
    RoleAssignment,
    User,
)
from engine.models.notifications import NotificationOptOut, NotificationOutbox
from engine.notifications.content import DEADLINE_KINDS, Kind, MailFacts, render
from engine.notifications.mailer import Mailer, mailer_for
from engine.notifications.settings import ADDRESS, NotificationSettings
from engine.notifications.statutory import is_statutory
from engine.processes import model_for
from engine.workflow.deadlines import compute_due_at, parse_duration

log = logging.getLogger("lotsen.notifications")

#: How long a claim holds while the message is being sent.
LEASE = timedelta(minutes=5)
#: Back-off after a failed send: RETRY_BASE, doubled per attempt, at most RETRY_MAX.
RETRY_BASE = timedelta(minutes=1)
RETRY_MAX = timedelta(hours=1)
PREFERENCES_PATH = "/account/notifications"


@dataclass
class SweepStats:
    """What one sweep did."""

    queued: int = 0
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    failed_ids: list[int] = field(default_factory=list)


def _is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _lock_audit_head(session: Session) -> None:
    session.execute(select(AuditHead.id).where(AuditHead.id == 1).with_for_update()).first()


def _approximate(duration: str) -> timedelta:
    """A look-back window from an ISO duration (months as 30 days, years as 365)."""
    d = parse_duration(duration)
    days = d.years * 365 + d.months * 30 + d.weeks * 7 + d.days
    return timedelta(days=days, hours=d.hours, minutes=d.minutes, seconds=d.seconds)


def retry_delay(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed send."""
    delay: timedelta = RETRY_BASE * (2 ** max(0, min(attempts - 1, 20)))
    return min(delay, RETRY_MAX)


# ---------------------------------------------------------------------------- queue


def recipients(session: Session, task: OpenTask, case: Case) -> list[User]:
    """Who hears about ``task``: its assignee, or the holders of its role in its unit."""
    if task.assignee_id is not None:
        user = session.get(User, task.assignee_id)
        return [user] if user is not None and user.active and user.email else []
    if task.role is None:
        return []
    query = (
        select(User)
        .join(RoleAssignment, RoleAssignment.user_id == User.id)
        .where(
            RoleAssignment.role == task.role,
            or_(RoleAssignment.unit_id.is_(None), RoleAssignment.unit_id == task.unit_id),
            User.active.is_(True),
            User.email.is_not(None),
            User.email != "",
        )
        .order_by(User.id)
    )
    if is_protected(case):
        # Protected identity: only the named team ever learns of the case.
        team = select(CaseMember.user_id).where(CaseMember.case_id == case.id)
        query = query.where(User.id.in_(team))
    return list(dict.fromkeys(session.execute(query).scalars()))


def _kinds_due(task: OpenTask, now: datetime, horizon: datetime, new_since: datetime) -> list[Kind]:
    kinds = []
    if task.created_at >= new_since:
        kinds.append(Kind.ASSIGNED)
    if task.due_at is not None:
        if task.due_at <= now:
            kinds.append(Kind.OVERDUE)
        elif task.due_at <= horizon:
            kinds.append(Kind.DUE_SOON)
    return kinds


def _opt_outs(session: Session, user_ids: Iterable[int]) -> dict[int, set[str]]:
    ids = sorted(set(user_ids))
    result: dict[int, set[str]] = {}
    if not ids:
        return result
    for user_id, kind in session.execute(
        select(NotificationOptOut.user_id, NotificationOptOut.kind).where(
            NotificationOptOut.user_id.in_(ids)
        )
    ):
        result.setdefault(user_id, set()).add(kind)
    return result


def _insert_ignoring_duplicates(session: Session, rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    if _is_sqlite(session):
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement: Any = sqlite_insert(NotificationOutbox).on_conflict_do_nothing()
    else:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement = pg_insert(NotificationOutbox).on_conflict_do_nothing(
            index_elements=["task_id", "kind", "user_id"]
        )
    inserted = session.execute(statement.returning(NotificationOutbox.id), rows).scalars()
    return len(list(inserted))


def queue_due(session: Session, settings: NotificationSettings, now: datetime) -> int:
    """Add the outbox rows that are due at ``now`` (in the caller's transaction)."""
    horizon = compute_due_at(now, settings.lead, working_days=settings.lead_working_days)
    new_since = now - _approximate(settings.assigned_within)
    candidates = session.execute(
        select(OpenTask, Case, ProcessInstance.version_id)
        .join(Case, Case.id == OpenTask.case_id)
        .join(ProcessInstance, ProcessInstance.id == OpenTask.instance_id)
        .where(
            OpenTask.status == "open",
            or_(
                OpenTask.created_at >= new_since,
                and_(OpenTask.due_at.is_not(None), OpenTask.due_at <= horizon),
            ),
        )
        .order_by(OpenTask.id)
        # the subjects (encrypted identity data) are read only to check protection, and only
        # for shared tasks: not loaded eagerly for every candidate
        .options(lazyload(Case.subjects), lazyload(Case.members))
    ).all()
    if not candidates:
        return 0
    existing: set[tuple[str, str, int]] = set(
        (task_id, kind, user_id)
        for task_id, kind, user_id in session.execute(
            select(
                NotificationOutbox.task_id, NotificationOutbox.kind, NotificationOutbox.user_id
            ).where(NotificationOutbox.task_id.in_([t.id for t, _, _ in candidates]))
        ).all()
    )
    wanted: list[tuple[OpenTask, Case, int, Kind]] = []
    statutory_cache: dict[tuple[int, str], bool] = {}
    models: dict[int, Any] = {}
    handled = {(task_id, kind) for task_id, kind, _ in existing}
    for task, case, version_id in candidates:
        # Skip what is already queued (keeps a sweep cheap with many overdue tasks): for an
        # assignee, their own row; for a shared task, any row of the kind (the role was told).
        kinds = [
            k
            for k in _kinds_due(task, now, horizon, new_since)
            if (task.id, k.value) not in handled
            or (
                task.assignee_id is not None
                and (task.id, k.value, task.assignee_id) not in existing
            )
        ]
        if not kinds:
            continue
        users = recipients(session, task, case)
        for kind in kinds:
            wanted.extend(
                (task, case, u.id, kind)
                for u in users
                if (task.id, kind.value, u.id) not in existing
            )
        if (
            any(k in DEADLINE_KINDS for k in kinds)
            and (version_id, task.bpmn_id) not in statutory_cache
        ):
            if version_id not in models:
                version = session.get(ProcessVersion, version_id)
                models[version_id] = model_for(version) if version is not None else None
            model = models[version_id]
            statutory_cache[(version_id, task.bpmn_id)] = model is not None and is_statutory(
                model, task.bpmn_id, settings.bpmn_dir
            )
    opted_out = _opt_outs(session, (user_id for _, _, user_id, _ in wanted))
    versions = {t.id: v for t, _, v in candidates}
    rows = []
    for task, case, user_id, kind in wanted:
        if kind.value in opted_out.get(user_id, set()):
            statutory = statutory_cache.get((versions[task.id], task.bpmn_id), False)
            if not (kind in DEADLINE_KINDS and statutory):
                continue
        rows.append(
            {
                "task_id": task.id,
                "case_id": case.id,
                "user_id": user_id,
                "kind": kind.value,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        )
    rows.sort(key=lambda r: (r["task_id"], r["kind"], r["user_id"]))
    return _insert_ignoring_duplicates(session, rows)


# ---------------------------------------------------------------------------- send


def _claimable(now: datetime) -> Any:
    return (
        (NotificationOutbox.status == "pending")
        & (NotificationOutbox.next_attempt_at <= now)
        & or_(NotificationOutbox.claimed_until.is_(None), NotificationOutbox.claimed_until < now)
    )


def _claim_next(
    session: Session, now: datetime, worker: str, exclude: set[int]
) -> NotificationOutbox | None:
    query = select(NotificationOutbox).where(_claimable(now))
    if exclude:
        query = query.where(NotificationOutbox.id.not_in(exclude))
    query = query.order_by(NotificationOutbox.next_attempt_at, NotificationOutbox.id).limit(1)
    if not _is_sqlite(session):
        row = session.execute(
            query.with_for_update(skip_locked=True).execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if row is not None:
            row.claimed_by = worker[:100]
            row.claimed_until = now + LEASE
        return row
    for _ in range(3):
        candidate = session.execute(
            query.with_only_columns(NotificationOutbox.id)
        ).scalar_one_or_none()
        if candidate is None:
            return None
        claimed = session.execute(
            update(NotificationOutbox)
            .where(NotificationOutbox.id == candidate, _claimable(now))
            .values(claimed_by=worker[:100], claimed_until=now + LEASE)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount == 1:  # type: ignore[attr-defined]
            return session.execute(
                select(NotificationOutbox)
                .where(NotificationOutbox.id == candidate)
                .execution_options(populate_existing=True)
            ).scalar_one()
        exclude.add(candidate)
        query = query.where(NotificationOutbox.id != candidate)
    return None


@dataclass(frozen=True)
class _Job:
    outbox_id: int
    kind: Kind
    user_id: int
    case_id: int
    task_id: str
    attempts: int
    address: str
    facts: MailFacts


def _skip_reason(task: OpenTask | None, user: User | None, kind: Kind) -> str | None:
    if task is None or task.status != "open":
        return "task_closed"
    if user is None or not user.active or not user.email:
        return "no_address"
    if not ADDRESS.fullmatch(user.email):
        return "bad_address"  # retrying could never succeed
    if kind in DEADLINE_KINDS and task.due_at is None:
        return "no_deadline"
    return None


def _prepare(
    session: Session, row: NotificationOutbox, settings: NotificationSettings
) -> _Job | str:
    """The job to send for a claimed row, or why it is skipped."""
    task = session.get(OpenTask, row.task_id)
    user = session.get(User, row.user_id)
    case = session.get(Case, row.case_id)
    kind = Kind(row.kind)
    reason = _skip_reason(task, user, kind) or (None if case is not None else "task_closed")
    if reason is not None:
        return reason
    assert task is not None and user is not None and user.email and case is not None
    facts = MailFacts(
        case_number=case.number,
        step=task.name,
        due_at=task.due_at,
        link=f"{settings.base_url}/tasks/{task.id}",
        preferences_link=f"{settings.base_url}{PREFERENCES_PATH}",
    )
    return _Job(row.id, kind, user.id, case.id, task.id, row.attempts, user.email, facts)


def _finish(
    factory: sessionmaker[Session],
    job: _Job,
    now: datetime,
    transport: str,
    error: Exception | None,
) -> None:
    """Record the outcome of one send attempt (and release the claim)."""
    attempts = job.attempts + 1
    with factory() as session, session.begin():
        _lock_audit_head(session)
        values: dict[str, Any] = {"attempts": attempts, "claimed_by": None, "claimed_until": None}
        details: dict[str, Any] = {
            "kind": job.kind.value,
            "task_id": job.task_id,
            "attempt": attempts,
            "transport": transport,
        }
        if error is None:
            values.update(status="sent", sent_at=now, last_error=None)
        else:
            delay = retry_delay(attempts)
            values.update(next_attempt_at=now + delay, last_error=type(error).__name__[:100])
            details.update(error=type(error).__name__, retry_after_s=delay.total_seconds())
        session.execute(
            update(NotificationOutbox)
            .where(NotificationOutbox.id == job.outbox_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        audit.record(
            session,
            SYSTEM,
            "notification:sent" if error is None else "notification:failed",
            case_id=job.case_id,
            object_type="user",
            object_id=job.user_id,
            purpose="notification",
            outcome="allowed" if error is None else "error",
            details=details,
        )


def _skip(session: Session, row: NotificationOutbox, reason: str) -> None:
    row.status = "skipped"
    row.claimed_by = None
    row.claimed_until = None
    row.last_error = reason
    audit.record(
        session,
        SYSTEM,
        "notification:skipped",
        case_id=row.case_id,
        object_type="user",
        object_id=row.user_id,
        purpose="notification",
        details={"kind": row.kind, "task_id": row.task_id, "reason": reason},
    )


def send_due(
    factory: sessionmaker[Session],
    settings: NotificationSettings,
    worker: str,
    now: datetime,
    *,
    mailer: Mailer | None = None,
    batch: int = 100,
    stats: SweepStats | None = None,
) -> SweepStats:
    """Send up to ``batch`` due outbox rows, each claimed, sent and recorded on its own."""
    result = stats if stats is not None else SweepStats()
    transport = mailer or mailer_for(settings)
    tried: set[int] = set()
    with factory() as probe:  # a plain read first: no lock on the audit head when idle
        pending = probe.execute(
            select(NotificationOutbox.id).where(_claimable(now)).limit(1)
        ).first()
        probe.rollback()
    if pending is None:
        return result
    for _ in range(batch):
        with factory() as session, session.begin():
            _lock_audit_head(session)
            row = _claim_next(session, now, worker, tried)
            if row is None:
                break
            tried.add(row.id)
            job = _prepare(session, row, settings)
            if isinstance(job, str):
                _skip(session, row, job)
                result.skipped += 1
                continue
        try:
            message = render(job.kind, job.facts, sender=settings.sender, recipient=job.address)
            transport.send(message, reference=f"notification-{job.outbox_id:08d}")
        except Exception as exc:  # SMTP down, refused, a bad address: retry later
            log.warning(
                "notification %s not sent (%s); retrying later", job.outbox_id, type(exc).__name__
            )
            _finish(factory, job, now, transport.name, exc)
            result.failed += 1
            result.failed_ids.append(job.outbox_id)
            continue
        _finish(factory, job, now, transport.name, None)
        result.sent += 1
    return result


def sweep(
    factory: sessionmaker[Session],
    settings: NotificationSettings,
    worker: str,
    now: datetime | None = None,
    *,
    mailer: Mailer | None = None,
    batch: int = 100,
) -> SweepStats:
    """One pass: queue what is due, then send what is pending. ``now`` defaults to the clock."""
    moment = (now or clock.now()).astimezone(UTC)
    stats = SweepStats()
    with factory() as session, session.begin():
        stats.queued = queue_due(session, settings, moment)
    return send_due(factory, settings, worker, moment, mailer=mailer, batch=batch, stats=stats)
