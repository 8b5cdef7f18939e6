"""The timer worker: fire due BPMN timers exactly once, from any number of processes.

SpiffWorkflow has no thread of its own: a timer whose due time has passed does nothing until
the host restores the instance and refreshes its timers. ``fire_due`` does that for every
instance whose ``next_timer_due_at`` has passed, one instance per transaction:

1. lock the audit-chain head (the lock order of every web action: audit head, then instance;
   the other order could deadlock with a request completing a task of the same case),
2. claim the next due instance: ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
   workers on several hosts never wait for or double-fire each other; on SQLite (where that
   clause is dropped) a conditional ``UPDATE ... WHERE claim is free`` whose row count must
   be 1 (SQLite's ``BEGIN IMMEDIATE`` already serialises writers; the check keeps the claim
   correct on its own),
3. restore the workflow, fire its due timers, save the state once, sync the open-task rows
   (escalation tasks appear in inboxes), write ``timer:fired`` as the system, commit.

Exactly once: the firing, the new state (the timer task completed, ``next_timer_due_at``
moved on) and the audit entry commit together. A worker that dies mid-transaction leaves
nothing behind: its locks go with its connection and another worker fires the timer later.

A firing that raises is rolled back and the instance gets a lease of ``RETRY_AFTER``
(``timer_claimed_until``), so a broken instance is retried later instead of in a hot loop;
when a lease runs out the instance is claimable again.

Clock: SpiffWorkflow computes and checks due times with ``datetime.now`` in its timer
module. ``install_spiff_clock`` (run on import) points that module at :data:`engine.db.clock`,
so ``clock.frozen = t + P15D`` makes a timer due for SpiffWorkflow and for the worker alike;
``spiff_now`` pins the time for one firing when ``fire_due`` is given an explicit ``now``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from engine import audit
from engine.audit import SYSTEM
from engine.db import clock
from engine.models import AuditHead, Case, ProcessInstance, ProcessVersion
from engine.processes import model_for

__all__ = [
    "LEASE",
    "RETRY_AFTER",
    "PassStats",
    "due_instances",
    "fire_due",
    "install_spiff_clock",
    "run_until_drained",
    "serve",
    "spiff_now",
    "timer_lag",
    "worker_id",
]

log = logging.getLogger("lotsen.timers")

#: How long a SQLite claim holds (it lives only inside the firing transaction, which is far
#: shorter; the lease matters only if a claim were ever committed without its firing).
LEASE = timedelta(minutes=5)
#: After a firing raised: wait this long before any worker tries the instance again.
RETRY_AFTER = timedelta(minutes=5)

_TIMER_EVENT_TYPES = frozenset(
    {"DurationTimerEventDefinition", "TimeDateEventDefinition", "CycleTimerEventDefinition"}
)

# ---------------------------------------------------------------------------- the clock hook

_real_datetime = datetime
_pinned_now: ContextVar[datetime | None] = ContextVar("lotsen_spiff_now", default=None)


class _ClockedMeta(type):
    """Keep ``isinstance(x, datetime)`` true for plain datetimes inside SpiffWorkflow."""

    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, _real_datetime)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, _real_datetime)


class ClockedDatetime(_real_datetime, metaclass=_ClockedMeta):
    """``datetime`` whose ``now()`` is Lotsen's clock (frozen in tests, pinned per firing)."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
        moment = _pinned_now.get() or clock.now()
        if tz is None:
            return moment.astimezone().replace(tzinfo=None)
        return moment.astimezone(tz)


def install_spiff_clock() -> None:
    """Make SpiffWorkflow's timer module read Lotsen's clock (idempotent).

    Only ``now()`` changes; with the clock neither frozen nor pinned it is the real time.
    """
    from SpiffWorkflow.bpmn.specs.event_definitions import timer as spiff_timer

    if spiff_timer.datetime is not ClockedDatetime:
        spiff_timer.datetime = ClockedDatetime


install_spiff_clock()


@contextmanager
def spiff_now(moment: datetime) -> Iterator[None]:
    """Within the block (this thread only), SpiffWorkflow's timers see ``moment`` as now."""
    token = _pinned_now.set(moment.astimezone(UTC))
    try:
        yield
    finally:
        _pinned_now.reset(token)


# ---------------------------------------------------------------------------- queries


def _is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _due_clause(now: datetime) -> Any:
    return (
        (ProcessInstance.status == "running")
        & ProcessInstance.next_timer_due_at.is_not(None)
        # Strictly before, as SpiffWorkflow compares (``due < now``): at the very due
        # instant it would not fire yet, and a claim would only be wasted.
        & (ProcessInstance.next_timer_due_at < now)
        & or_(
            ProcessInstance.timer_claimed_until.is_(None),
            ProcessInstance.timer_claimed_until < now,
        )
    )


def due_instances(session: Session, now: datetime, limit: int = 50) -> list[int]:
    """Ids of running instances with a timer due at ``now`` and no live claim, earliest
    first. A plain read (no locks): for monitoring and a cheap "anything to do?" check."""
    rows = session.execute(
        select(ProcessInstance.id)
        .where(_due_clause(now))
        .order_by(ProcessInstance.next_timer_due_at, ProcessInstance.id)
        .limit(limit)
    ).scalars()
    return list(rows)


def timer_lag(session: Session, now: datetime | None = None) -> timedelta | None:
    """How overdue the most overdue timer is (for a health check); None when none is due."""
    moment = now or clock.now()
    oldest = session.execute(
        select(func.min(ProcessInstance.next_timer_due_at)).where(_due_clause(moment))
    ).scalar_one_or_none()
    if oldest is None:
        return None
    if oldest.tzinfo is None:  # pragma: no cover - UTCDateTime always returns aware values
        oldest = oldest.replace(tzinfo=UTC)
    return moment - oldest


def _claim_next(
    session: Session, now: datetime, worker: str, exclude: set[int]
) -> ProcessInstance | None:
    """Claim the earliest due instance not in ``exclude`` inside the session's transaction."""
    query = select(ProcessInstance).where(_due_clause(now))
    if exclude:
        query = query.where(ProcessInstance.id.not_in(exclude))
    query = query.order_by(ProcessInstance.next_timer_due_at, ProcessInstance.id).limit(1)
    if not _is_sqlite(session):
        return session.execute(
            query.with_for_update(skip_locked=True).execution_options(populate_existing=True)
        ).scalar_one_or_none()
    for _ in range(3):  # a lost race (only possible without BEGIN IMMEDIATE) tries the next
        candidate = session.execute(
            query.with_only_columns(ProcessInstance.id)
        ).scalar_one_or_none()
        if candidate is None:
            return None
        claimed = session.execute(
            update(ProcessInstance)
            .where(ProcessInstance.id == candidate, _due_clause(now))
            .values(timer_claimed_by=worker, timer_claimed_until=now + LEASE)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount == 1:  # type: ignore[attr-defined]
            return session.execute(
                select(ProcessInstance)
                .where(ProcessInstance.id == candidate)
                .execution_options(populate_existing=True)
            ).scalar_one()
        exclude.add(candidate)
        query = query.where(ProcessInstance.id != candidate)
    return None


def _due_timer_events(wf: Any, now: datetime) -> set[tuple[str, str, str]]:
    """(name, type, due) of the instance's waiting timers that are due at ``now``."""
    due = set()
    for event in wf.waiting_events():
        if event.event_type not in _TIMER_EVENT_TYPES:
            continue
        value = event.value
        if isinstance(value, dict):
            value = value.get("next")
        if not isinstance(value, str):
            continue
        try:
            moment = _real_datetime.fromisoformat(value)
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if moment < now:
            due.add((str(event.name or ""), str(event.event_type), value))
    return due


def _waiting_timer_events(wf: Any) -> set[tuple[str, str, str]]:
    return {
        (str(e.name or ""), str(e.event_type), str(e.value))
        for e in wf.waiting_events()
        if e.event_type in _TIMER_EVENT_TYPES
    }


# ---------------------------------------------------------------------------- firing


@dataclass
class PassStats:
    """What one ``fire_due`` call did."""

    fired: int = 0
    claimed: int = 0
    failed: int = 0
    seconds: float = 0.0
    failed_ids: list[int] = field(default_factory=list)


def _fire_one(
    session: Session, instance: ProcessInstance, worker: str, now: datetime
) -> list[dict[str, str]]:
    """Fire the claimed instance's due timers in the session's transaction; return them."""
    # Imported here: engine.actions imports this module's neighbours at start-up, and the
    # private helpers are the same code every web action runs.
    from engine.actions import _save_state, _start_linked, _sync_tasks, runtime

    version = session.get(ProcessVersion, instance.version_id)
    case = session.get(Case, instance.case_id)
    assert version is not None and case is not None
    wf = runtime.restore(version.sha256, version.spec_json, instance.state)
    with spiff_now(now):
        due = _due_timer_events(wf, now)
        runtime.fire_due_timers(wf)
    still_waiting = _waiting_timer_events(wf)
    fired = sorted(e for e in due if e not in still_waiting)
    if not fired:
        # Due by the column but nothing fired (the column was stale): correct the column
        # and free the claim without a version bump, so open forms stay valid.
        session.execute(
            update(ProcessInstance)
            .where(ProcessInstance.id == instance.id)
            .values(
                next_timer_due_at=runtime.next_timer_due(wf),
                timer_claimed_by=None,
                timer_claimed_until=None,
            )
            .execution_options(synchronize_session=False)
        )
        return []
    instance.timer_claimed_by = None
    instance.timer_claimed_until = None
    _save_state(instance, wf)
    session.flush()
    model = model_for(version)
    new_rows = _sync_tasks(session, case, instance, model, runtime.ready_user_tasks(wf))
    requests = runtime.take_start_requests(wf)
    if requests:
        _start_linked(session, SYSTEM, case, requests, depth=0)
    timers = [{"name": name, "type": kind, "due": value} for name, kind, value in fired]
    audit.record(
        session,
        SYSTEM,
        "timer:fired",
        case_id=case.id,
        object_type="instance",
        object_id=instance.id,
        purpose="deadline",
        details={
            "timers": timers,
            "new_tasks": sorted(r.bpmn_id for r in new_rows),
            "worker": worker[:100],
        },
    )
    return timers


def _lock_audit_head(session: Session) -> None:
    session.execute(select(AuditHead.id).where(AuditHead.id == 1).with_for_update()).first()


def _back_off(
    factory: sessionmaker[Session], instance_id: int, worker: str, now: datetime, exc: Exception
) -> None:
    """Record a failed firing and keep workers off the instance for ``RETRY_AFTER``."""
    with factory() as session, session.begin():
        _lock_audit_head(session)
        session.execute(
            update(ProcessInstance)
            .where(ProcessInstance.id == instance_id)
            .values(timer_claimed_by=worker[:100], timer_claimed_until=now + RETRY_AFTER)
            .execution_options(synchronize_session=False)
        )
        case_id = session.execute(
            select(ProcessInstance.case_id).where(ProcessInstance.id == instance_id)
        ).scalar_one_or_none()
        audit.record(
            session,
            SYSTEM,
            "timer:failed",
            case_id=case_id,
            object_type="instance",
            object_id=instance_id,
            purpose="deadline",
            outcome="error",
            details={"error": type(exc).__name__, "retry_after_s": RETRY_AFTER.total_seconds()},
        )


def fire_due(
    session_factory: sessionmaker[Session],
    worker_id: str,
    now: datetime | None = None,
    batch: int = 50,
    *,
    stats: PassStats | None = None,
    tried: set[int] | None = None,
) -> int:
    """Fire the timers of up to ``batch`` due instances, one transaction each; return how
    many instances fired. ``now`` defaults to :data:`engine.db.clock` (read once).

    ``tried``: instances this pass must not claim again (extended here): those that failed,
    fired nothing, or are still due after firing (a cycle timer catching up one cycle per
    pass). Instances that fired are not listed: their due time has moved past ``now``."""
    moment = (now or clock.now()).astimezone(UTC)
    result = stats if stats is not None else PassStats()
    tried = tried if tried is not None else set()
    started = time.perf_counter()
    fired = 0
    claimed = 0
    with session_factory() as probe:
        anything = bool(due_instances(probe, moment, 1))
        probe.rollback()
    while anything and claimed < batch:
        session = session_factory()
        instance_id: int | None = None
        try:
            with session.begin():
                _lock_audit_head(session)
                instance = _claim_next(session, moment, worker_id, tried)
                if instance is None:
                    break
                instance_id = instance.id
                claimed += 1
                result.claimed += 1
                timers = _fire_one(session, instance, worker_id, moment)
                due_next = instance.next_timer_due_at
            if not timers or (due_next is not None and due_next < moment):
                tried.add(instance_id)
            if timers:
                fired += 1
                log.info(
                    "timer fired: instance=%s timers=%s",
                    instance_id,
                    ",".join(t["name"] or t["type"] for t in timers),
                )
        except Exception as exc:  # one broken instance must not stop the others
            if instance_id is None:
                raise
            tried.add(instance_id)
            result.failed += 1
            result.failed_ids.append(instance_id)
            log.exception("timer firing failed: instance=%s (%s)", instance_id, type(exc).__name__)
            _back_off(session_factory, instance_id, worker_id, moment, exc)
        finally:
            session.close()
    result.fired += fired
    result.seconds += time.perf_counter() - started
    return fired


def run_until_drained(
    session_factory: sessionmaker[Session],
    worker_id: str,
    now: datetime | None = None,
    batch: int = 50,
    should_stop: Callable[[], bool] = lambda: False,
) -> PassStats:
    """Call ``fire_due`` until a call leaves nothing due (or ``should_stop``); one pass."""
    stats = PassStats()
    tried: set[int] = set()
    moment = now or clock.now()
    while not should_stop():
        before = stats.claimed
        fire_due(session_factory, worker_id, moment, batch, stats=stats, tried=tried)
        if stats.claimed - before < batch:
            break
    return stats


def worker_id() -> str:
    """``host:pid:thread`` — who holds a claim, in leases and audit details."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"[:100]


#: The worker never sleeps longer than this, so a timer fires within a minute of its due time.
MAX_INTERVAL = 30.0


def serve(
    session_factory: sessionmaker[Session],
    stop: threading.Event,
    *,
    interval: float = 15.0,
    batch: int = 50,
    worker: str | None = None,
    max_passes: int | None = None,
) -> int:
    """The worker loop: a pass, then sleep ``interval`` (at most 30 s) or until ``stop``.

    A pass that fails (database down) is logged and retried after the interval. Returns the
    number of instances fired in all passes.
    """
    wid = worker or worker_id()
    pause = max(0.0, min(float(interval), MAX_INTERVAL))
    total = 0
    passes = 0
    log.info("timer worker %s started (interval %.0f s)", wid, pause)
    while not stop.is_set():
        try:
            stats = run_until_drained(session_factory, wid, batch=batch, should_stop=stop.is_set)
        except Exception:
            log.exception("timer pass failed; retrying in %.0f s", pause)
        else:
            total += stats.fired
            if stats.claimed or stats.failed:
                log.info(
                    "timer pass: fired=%d claimed=%d failed=%d in %.2f s",
                    stats.fired,
                    stats.claimed,
                    stats.failed,
                    stats.seconds,
                )
        passes += 1
        if max_passes is not None and passes >= max_passes:
            break
        stop.wait(pause)
    log.info("timer worker %s stopped after %d passes (%d fired)", wid, passes, total)
    return total
