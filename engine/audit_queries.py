"""Log follow-up for auditors: search the access log, sample checks, unusual-access signals
and a person's access extract (security.md §2.3, §4.2; domain.md §4.6).

Only the ``auditor`` role gets here (checked again in every function, whatever the web layer
did), and every read of the log is itself logged (``audit:*`` entries). Filters name users,
case numbers and subject ids, never a personnummer: a person search takes the normalised
number, looks it up by its blind index and logs only that index.

Framework-free: returns frozen dataclasses, never ORM rows; the caller commits.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, func, not_, or_, select
from sqlalchemy.orm import Session

from engine import audit, crypto
from engine.audit import Actor
from engine.db import utcnow
from engine.errors import Forbidden, NotFound, ValidationFailed
from engine.models import AuditEntry, Case, LogReview, LogReviewItem, Subject, Unit, User
from engine.roles import AUDITOR

STOCKHOLM = ZoneInfo("Europe/Stockholm")
PAGE_SIZE = 50
#: Most entries of one kind a signals list shows (the count says how many there were).
SIGNAL_LIMIT = 200
#: Default threshold for "many distinct cases read by one user in a short window".
BURST_CASES = 20
BURST_MINUTES = 10
#: Local hours that count as after hours: from 22:00 to 06:00 Stockholm time.
AFTER_HOURS_START = 22
AFTER_HOURS_END = 6
#: Largest random part of a sample, and the longest comment on a finding.
MAX_SAMPLE = 500
MAX_COMMENT = 2000
#: The longest period one search, sample or signals page covers (in days).
MAX_PERIOD_DAYS = 366

FINDINGS = ("ok", "follow_up", "incident")
#: Why an entry is in a sample, strongest first.
REASONS = ("break_glass", "protected", "denied", "random")
BREAK_GLASS = "case:break_glass"
#: Entries that show case data to the actor (a read, a download).
READ_ACTIONS = ("case:viewed", "task:viewed", "document:downloaded")
#: The auditors' own log reading: not part of the random sample nor of a person's extract.
AUDIT_PREFIX = "audit:"


# --- read models ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditEntryView:
    """One access-log entry as the auditor pages show it."""

    seq: int
    ts: datetime
    action: str
    outcome: str
    actor_id: int | None
    actor_name: str | None
    actor_roles: str | None
    case_id: int | None
    case_number: str | None
    protected: bool
    object_type: str | None
    object_id: str | None
    purpose: str | None
    source_ip: str | None
    details: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class AuditFilter:
    """What the log search narrows to; dates are Stockholm calendar days (inclusive)."""

    user_id: int | None = None
    case_number: str | None = None
    subject_id: int | None = None
    action: str | None = None
    outcome: str | None = None
    date_from: date | None = None
    date_to: date | None = None

    def category(self) -> list[str]:
        """Which filters are set (what the ``audit:searched`` entry records)."""
        names = ("user_id", "case_number", "subject_id", "action", "outcome")
        used = [name for name in names if getattr(self, name) not in (None, "")]
        if self.date_from or self.date_to:
            used.append("period")
        return used


@dataclass(frozen=True)
class AuditPage:
    """One page of search results, newest first."""

    entries: tuple[AuditEntryView, ...]
    page: int
    page_size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


@dataclass(frozen=True)
class SubjectHit:
    """A subject found by a person search (no personnummer, no name when protected)."""

    subject_id: int
    case_id: int
    case_number: str
    unit_name: str
    label: str | None
    protected: bool


@dataclass(frozen=True)
class BurstSignal:
    """One user read many distinct cases within the window."""

    actor_id: int
    actor_name: str | None
    first_ts: datetime
    last_ts: datetime
    distinct_cases: int
    reads: int


@dataclass(frozen=True)
class SignalList:
    """Entries of one signal kind: the newest ``SIGNAL_LIMIT`` and how many there were."""

    entries: tuple[AuditEntryView, ...]
    total: int


@dataclass(frozen=True)
class Signals:
    """Unusual-access signals for a period (security.md §4.2 "Reports")."""

    start: datetime
    end: datetime
    denied: SignalList
    protected_reads: SignalList
    bursts: tuple[BurstSignal, ...]
    break_glass: SignalList
    after_hours: SignalList
    burst_cases: int
    burst_minutes: int


@dataclass(frozen=True)
class ReviewItemView:
    """One sampled entry and its finding."""

    id: int
    reason: str
    finding: str | None
    comment: str | None
    reviewed_by: str | None
    reviewed_at: datetime | None
    entry: AuditEntryView | None


@dataclass(frozen=True)
class ReviewSummary:
    """A log review in the list of reviews."""

    id: int
    created_at: datetime
    created_by: str
    period_start: datetime
    period_end: datetime
    items: int
    reviewed: int
    follow_up: int
    incidents: int


@dataclass(frozen=True)
class ReviewView:
    """A log review with all its items (mandatory ones first, then newest first)."""

    summary: ReviewSummary
    random_size: int
    items: tuple[ReviewItemView, ...]


@dataclass(frozen=True)
class ExtractRow:
    """One access to the person's case data: when, by whom (role and unit), what and why."""

    ts: datetime
    case_number: str
    actor_name: str | None
    roles: tuple[tuple[str, str | None], ...]
    action: str
    purpose: str | None


@dataclass(frozen=True)
class AccessExtract:
    """Who saw a person's case data, when and why (Art. 15; CJEU C-579/21)."""

    subject_id: int
    subject_label: str | None
    protected: bool
    case_numbers: tuple[str, ...]
    rows: tuple[ExtractRow, ...]
    generated_at: datetime


# --- helpers -------------------------------------------------------------------------------------


def require_auditor(actor: Actor) -> None:
    """Only the log reviewer role reads the access log."""
    if not actor.has_role(AUDITOR):
        raise Forbidden("only an auditor may read the access log")


def local_day_bounds(
    date_from: date | None, date_to: date | None
) -> tuple[datetime | None, datetime | None]:
    """Stockholm calendar days (inclusive) as a UTC half-open interval."""
    start = datetime.combine(date_from, time(0), STOCKHOLM) if date_from else None
    end = datetime.combine(date_to + timedelta(days=1), time(0), STOCKHOLM) if date_to else None
    return start, end


def period(
    date_from: date | None, date_to: date | None, default_days: int = 30
) -> tuple[datetime, datetime]:
    """A closed period from optional Stockholm days; defaults to the last ``default_days``."""
    today = utcnow().astimezone(STOCKHOLM).date()
    last = date_to or today
    first = date_from or (last - timedelta(days=default_days - 1))
    if first > last:
        raise ValidationFailed({"date_from": ["The start date is after the end date."]})
    if (last - first).days >= MAX_PERIOD_DAYS:
        raise ValidationFailed({"date_from": ["The period is longer than a year."]})
    start, end = local_day_bounds(first, last)
    assert start is not None and end is not None
    return start, end


def is_after_hours(ts: datetime) -> bool:
    """Between 22:00 and 06:00 Stockholm time."""
    hour = ts.astimezone(STOCKHOLM).hour
    return hour >= AFTER_HOURS_START or hour < AFTER_HOURS_END


def _protected_case_ids(session: Session) -> set[int]:
    protected_subjects = select(Subject.case_id).where(
        Subject.protected_identity_type.not_in(("", "none"))
    )
    rows = session.execute(
        select(Case.id).where(
            or_(Case.secrecy_class == "PROTECTED_IDENTITY", Case.id.in_(protected_subjects))
        )
    ).scalars()
    return set(rows)


class _Cases:
    """Case numbers and protection, looked up once per query."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.numbers: dict[int, str] = {}
        self.protected = _protected_case_ids(session)

    def number(self, case_id: int | None) -> str | None:
        if case_id is None:
            return None
        if case_id not in self.numbers:
            case = self.session.get(Case, case_id)
            self.numbers[case_id] = case.number if case else f"#{case_id}"
        return self.numbers[case_id]


def _view(entry: AuditEntry, cases: _Cases) -> AuditEntryView:
    details = tuple(sorted((str(k), str(v)) for k, v in (entry.details or {}).items()))
    return AuditEntryView(
        seq=entry.seq,
        ts=entry.ts,
        action=entry.action,
        outcome=entry.outcome,
        actor_id=entry.actor_id,
        actor_name=entry.actor_name,
        actor_roles=entry.actor_roles,
        case_id=entry.case_id,
        case_number=cases.number(entry.case_id),
        protected=entry.case_id in cases.protected,
        object_type=entry.object_type,
        object_id=entry.object_id,
        purpose=entry.purpose,
        source_ip=entry.source_ip,
        details=details,
    )


def _views(session: Session, query: Select[AuditEntry]) -> tuple[AuditEntryView, ...]:
    cases = _Cases(session)
    return tuple(_view(e, cases) for e in session.execute(query).scalars())


def person_case_ids(session: Session, subject_id: int) -> list[int]:
    """The cases of a subject, and of every subject with the same personnummer (one person)."""
    subject = session.get(Subject, subject_id)
    if subject is None:
        return []
    ids = {subject.case_id}
    if subject.personnummer_index:
        ids.update(
            session.execute(
                select(Subject.case_id).where(
                    Subject.personnummer_index == subject.personnummer_index
                )
            ).scalars()
        )
    return sorted(ids)


def _in_period(start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(AuditEntry.ts >= start, AuditEntry.ts < end)


# --- search --------------------------------------------------------------------------------------


def _conditions(session: Session, flt: AuditFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if flt.user_id is not None:
        conditions.append(AuditEntry.actor_id == flt.user_id)
    if flt.case_number:
        case_id = session.execute(
            select(Case.id).where(Case.number == flt.case_number.strip())
        ).scalar_one_or_none()
        conditions.append(AuditEntry.case_id == (case_id if case_id is not None else -1))
    if flt.subject_id is not None:
        conditions.append(AuditEntry.case_id.in_(person_case_ids(session, flt.subject_id) or [-1]))
    if flt.action:
        conditions.append(AuditEntry.action == flt.action)
    if flt.outcome:
        conditions.append(AuditEntry.outcome == flt.outcome)
    start, end = local_day_bounds(flt.date_from, flt.date_to)
    if start is not None:
        conditions.append(AuditEntry.ts >= start)
    if end is not None:
        conditions.append(AuditEntry.ts < end)
    return conditions


def search_log(
    session: Session, actor: Actor, flt: AuditFilter, page: int = 1, page_size: int = PAGE_SIZE
) -> AuditPage:
    """One page of the filtered log, newest first; the search itself is logged."""
    require_auditor(actor)
    page = max(1, page)
    conditions = _conditions(session, flt)
    total = int(
        session.execute(
            select(func.count()).select_from(AuditEntry).where(*conditions)
        ).scalar_one()
    )
    query = (
        select(AuditEntry)
        .where(*conditions)
        .order_by(AuditEntry.seq.desc())
        .offset((page - 1) * page_size)
        .limit(page_size)
    )
    entries = _views(session, query)
    case_id = None
    if flt.case_number:
        case_id = session.execute(
            select(Case.id).where(Case.number == flt.case_number.strip())
        ).scalar_one_or_none()
    audit.record(
        session,
        actor,
        "audit:searched",
        case_id=case_id,
        object_type="subject" if flt.subject_id is not None else None,
        object_id=flt.subject_id,
        purpose="log review",
        details={
            "filter": flt.category(),
            "user_id": flt.user_id,
            "page": page,
            "results": total,
        },
    )
    return AuditPage(entries=entries, page=page, page_size=page_size, total=total)


def logged_actions(session: Session, actor: Actor) -> list[str]:
    """The distinct actions in the log (for the filter's choice list)."""
    require_auditor(actor)
    return sorted(session.execute(select(AuditEntry.action).distinct()).scalars())


def logged_users(session: Session, actor: Actor) -> list[tuple[int, str]]:
    """(id, display name) of every user (for the filter's choice list)."""
    require_auditor(actor)
    rows = session.execute(
        select(User.id, User.display_name, User.username).order_by(User.username)
    )
    return [(row.id, f"{row.display_name} ({row.username})") for row in rows]


def find_subjects(session: Session, actor: Actor, personnummer12: str) -> tuple[SubjectHit, ...]:
    """Subjects with this (normalised, 12-digit) personnummer; logs the blind index only."""
    require_auditor(actor)
    # every configured key's index: rows not yet rotated by ``rotate-keys`` still match
    indexes = crypto.blind_index_candidates(personnummer12, purpose="personnummer")
    subjects = session.execute(
        select(Subject).where(Subject.personnummer_index.in_(indexes)).order_by(Subject.id)
    ).scalars()
    protected = _protected_case_ids(session)
    hits = []
    for s in subjects:
        case = session.get(Case, s.case_id)
        if case is None:
            continue
        unit = session.get(Unit, case.unit_id)
        shielded = s.is_protected or case.id in protected
        hits.append(
            SubjectHit(
                subject_id=s.id,
                case_id=case.id,
                case_number=case.number,
                unit_name=unit.name if unit else "",
                label=None if shielded else (s.name or s.alias),
                protected=shielded,
            )
        )
    audit.record(
        session,
        actor,
        "audit:searched",
        object_type="person",
        purpose="log review",
        details={
            "filter": ["person"],
            "query_hash": indexes[0],
            "results": len(hits),
            "subject_ids": [h.subject_id for h in hits],
        },
    )
    return tuple(hits)


# --- unusual-access signals ----------------------------------------------------------------------


def _signal_list(session: Session, cases: _Cases, condition: ColumnElement[bool]) -> SignalList:
    total = int(
        session.execute(select(func.count()).select_from(AuditEntry).where(condition)).scalar_one()
    )
    rows = session.execute(
        select(AuditEntry).where(condition).order_by(AuditEntry.seq.desc()).limit(SIGNAL_LIMIT)
    ).scalars()
    return SignalList(tuple(_view(e, cases) for e in rows), total)


def find_bursts(
    reads: Iterable[tuple[int, str | None, datetime, int]], threshold: int, window: timedelta
) -> list[BurstSignal]:
    """Spans in which one user kept reading at least ``threshold`` distinct cases per window.

    ``reads``: (actor id, actor name, time, case id), sorted by actor and time. A burst starts
    when a window first holds ``threshold`` distinct cases and lasts while the sliding window
    still does; it is reported once, with every read and distinct case of the span.
    """
    bursts: list[BurstSignal] = []
    current: int | None = None
    recent: deque[tuple[datetime, int]] = deque()
    span: list[tuple[datetime, int]] = []
    name: str | None = None

    def close() -> None:
        if span and current is not None:
            bursts.append(
                BurstSignal(
                    actor_id=current,
                    actor_name=name,
                    first_ts=span[0][0],
                    last_ts=span[-1][0],
                    distinct_cases=len({c for _, c in span}),
                    reads=len(span),
                )
            )
        span.clear()

    for actor_id, actor_name, ts, case_id in reads:
        if actor_id != current:
            close()
            current, name, recent = actor_id, actor_name, deque()
        recent.append((ts, case_id))
        while ts - recent[0][0] > window:
            recent.popleft()
        if len({c for _, c in recent}) >= threshold:
            if not span:
                span.extend(recent)
            else:
                span.append((ts, case_id))
        elif span:
            close()
    close()
    return bursts


def signals(
    session: Session,
    actor: Actor,
    start: datetime,
    end: datetime,
    *,
    burst_cases: int = BURST_CASES,
    burst_minutes: int = BURST_MINUTES,
) -> Signals:
    """Denied accesses, protected-identity reads, read bursts, break-the-glass and after-hours
    access in ``[start, end)``; the look is logged."""
    require_auditor(actor)
    if burst_cases < 2 or burst_minutes < 1:
        raise ValidationFailed({"burst_cases": ["The threshold is too low."]})
    cases = _Cases(session)
    in_period = _in_period(start, end)
    not_audit = not_(AuditEntry.action.startswith(AUDIT_PREFIX))
    denied = _signal_list(session, cases, and_(in_period, AuditEntry.outcome == "denied"))
    protected_reads = _signal_list(
        session,
        cases,
        and_(
            in_period,
            AuditEntry.action.in_(READ_ACTIONS),
            AuditEntry.outcome == "allowed",
            AuditEntry.case_id.in_(cases.protected or {-1}),
        ),
    )
    break_glass = _signal_list(session, cases, and_(in_period, AuditEntry.action == BREAK_GLASS))
    read_rows = session.execute(
        select(AuditEntry.actor_id, AuditEntry.actor_name, AuditEntry.ts, AuditEntry.case_id)
        .where(
            in_period,
            AuditEntry.action == "case:viewed",
            AuditEntry.outcome == "allowed",
            AuditEntry.actor_id.is_not(None),
            AuditEntry.case_id.is_not(None),
        )
        .order_by(AuditEntry.actor_id, AuditEntry.ts, AuditEntry.seq)
    ).all()
    bursts = find_bursts(
        ((r.actor_id, r.actor_name, r.ts, r.case_id) for r in read_rows),
        burst_cases,
        timedelta(minutes=burst_minutes),
    )
    late = [
        row.seq
        for row in session.execute(
            select(AuditEntry.seq, AuditEntry.ts).where(
                in_period,
                not_audit,
                AuditEntry.case_id.is_not(None),
                AuditEntry.actor_id.is_not(None),
            )
        )
        if is_after_hours(row.ts)
    ]
    late.sort(reverse=True)
    after_hours = SignalList(
        _views(
            session,
            select(AuditEntry)
            .where(AuditEntry.seq.in_(late[:SIGNAL_LIMIT]))
            .order_by(AuditEntry.seq.desc()),
        ),
        len(late),
    )
    result = Signals(
        start=start,
        end=end,
        denied=denied,
        protected_reads=protected_reads,
        bursts=tuple(bursts),
        break_glass=break_glass,
        after_hours=after_hours,
        burst_cases=burst_cases,
        burst_minutes=burst_minutes,
    )
    audit.record(
        session,
        actor,
        "audit:signals_viewed",
        purpose="log review",
        details={
            "from": start.isoformat(),
            "to": end.isoformat(),
            "denied": denied.total,
            "protected_reads": protected_reads.total,
            "bursts": len(bursts),
            "break_glass": break_glass.total,
            "after_hours": after_hours.total,
        },
    )
    return result


# --- sampled log review (logguppföljning) --------------------------------------------------------


def draw_sample(
    session: Session, actor: Actor, start: datetime, end: datetime, random_size: int
) -> int:
    """Draw a sample for ``[start, end)``: every break-the-glass, protected-identity and denied
    entry, plus ``random_size`` others chosen at random. Returns the review id."""
    require_auditor(actor)
    if not 0 <= random_size <= MAX_SAMPLE:
        raise ValidationFailed({"size": [f"Choose between 0 and {MAX_SAMPLE} entries."]})
    if start >= end:
        raise ValidationFailed({"date_from": ["The start date is after the end date."]})
    protected = _protected_case_ids(session)
    in_period = _in_period(start, end)
    rows = session.execute(
        select(AuditEntry.seq, AuditEntry.action, AuditEntry.outcome, AuditEntry.case_id).where(
            in_period
        )
    ).all()
    reasons: dict[int, str] = {}
    pool: list[int] = []
    for row in rows:
        if row.action == BREAK_GLASS:
            reasons[row.seq] = "break_glass"
        elif row.case_id is not None and row.case_id in protected:
            reasons[row.seq] = "protected"
        elif row.outcome == "denied":
            reasons[row.seq] = "denied"
        elif not row.action.startswith(AUDIT_PREFIX):
            pool.append(row.seq)
    chosen = secrets.SystemRandom().sample(pool, min(random_size, len(pool)))
    reasons.update(dict.fromkeys(chosen, "random"))
    review = LogReview(
        created_by_id=actor.user_id,
        period_start=start,
        period_end=end,
        random_size=random_size,
        items=[LogReviewItem(audit_seq=seq, reason=reason) for seq, reason in reasons.items()],
    )
    session.add(review)
    session.flush()
    counts = {reason: sum(1 for r in reasons.values() if r == reason) for reason in REASONS}
    audit.record(
        session,
        actor,
        "audit:sample_drawn",
        object_type="log_review",
        object_id=review.id,
        purpose="log review",
        details={"from": start.isoformat(), "to": end.isoformat(), **counts},
    )
    return review.id


def _summary(session: Session, review: LogReview) -> ReviewSummary:
    creator = session.get(User, review.created_by_id)
    findings = [item.finding for item in review.items]
    return ReviewSummary(
        id=review.id,
        created_at=review.created_at,
        created_by=creator.display_name if creator else f"#{review.created_by_id}",
        period_start=review.period_start,
        period_end=review.period_end,
        items=len(findings),
        reviewed=sum(1 for f in findings if f is not None),
        follow_up=findings.count("follow_up"),
        incidents=findings.count("incident"),
    )


def list_reviews(session: Session, actor: Actor) -> tuple[ReviewSummary, ...]:
    """Every log review, newest first."""
    require_auditor(actor)
    reviews = session.execute(select(LogReview).order_by(LogReview.id.desc())).scalars()
    return tuple(_summary(session, r) for r in reviews)


def review_view(session: Session, actor: Actor, review_id: int) -> ReviewView:
    """A review with its sampled entries; the look is logged."""
    require_auditor(actor)
    review = session.get(LogReview, review_id) if 1 <= review_id <= 2**31 - 1 else None
    if review is None:
        raise NotFound("log review not found")
    seqs = [item.audit_seq for item in review.items]
    cases = _Cases(session)
    entries = {
        e.seq: _view(e, cases)
        for e in session.execute(select(AuditEntry).where(AuditEntry.seq.in_(seqs))).scalars()
    }
    users: dict[int, str] = {}
    for item in review.items:
        if item.reviewed_by_id is not None and item.reviewed_by_id not in users:
            user = session.get(User, item.reviewed_by_id)
            users[item.reviewed_by_id] = user.display_name if user else f"#{item.reviewed_by_id}"
    order = {reason: i for i, reason in enumerate(REASONS)}
    items = sorted(review.items, key=lambda i: (order.get(i.reason, 9), -i.audit_seq))
    audit.record(
        session,
        actor,
        "audit:review_viewed",
        object_type="log_review",
        object_id=review.id,
        purpose="log review",
    )
    return ReviewView(
        summary=_summary(session, review),
        random_size=review.random_size,
        items=tuple(
            ReviewItemView(
                id=item.id,
                reason=item.reason,
                finding=item.finding,
                comment=item.comment,
                reviewed_by=users.get(item.reviewed_by_id) if item.reviewed_by_id else None,
                reviewed_at=item.reviewed_at,
                entry=entries.get(item.audit_seq),
            )
            for item in items
        ),
    )


def record_finding(
    session: Session, actor: Actor, review_id: int, item_id: int, finding: str, comment: str
) -> None:
    """Store the auditor's finding on one sampled entry (logged; the comment is not)."""
    require_auditor(actor)
    item = session.get(LogReviewItem, item_id) if 1 <= item_id <= 2**31 - 1 else None
    if item is None or item.review_id != review_id:
        raise NotFound("sample entry not found")
    comment = comment.replace("\x00", "").strip()
    errors: dict[str, list[str]] = {}
    if finding not in FINDINGS:
        errors["finding"] = ["Choose a finding."]
    if len(comment) > MAX_COMMENT:
        errors["comment"] = [f"At most {MAX_COMMENT} characters."]
    elif finding in ("follow_up", "incident") and not comment:
        errors["comment"] = ["Say what needs follow-up or what happened."]
    if errors:
        raise ValidationFailed(errors)
    previous = item.finding
    item.finding = finding
    item.comment = comment or None
    item.reviewed_by_id = actor.user_id
    item.reviewed_at = utcnow()
    session.flush()
    audit.record(
        session,
        actor,
        "audit:finding_recorded",
        object_type="log_review_item",
        object_id=item.id,
        purpose="log review",
        details={
            "review_id": review_id,
            "audit_seq": item.audit_seq,
            "finding": finding,
            "previous": previous,
        },
    )


# --- a person's access extract -------------------------------------------------------------------


def parse_roles(actor_roles: str | None) -> tuple[tuple[str, int | None], ...]:
    """``"caseworker@1,auditor"`` as ((role, unit id), ...)."""
    pairs: list[tuple[str, int | None]] = []
    for part in (actor_roles or "").split(","):
        if not part:
            continue
        role, _, unit = part.partition("@")
        pairs.append((role, int(unit) if unit.isdigit() else None))
    return tuple(pairs)


def access_extract(
    session: Session, actor: Actor, subject_id: int, *, purpose: str
) -> AccessExtract:
    """Every access by staff to the person's case data (allowed ones, excluding the log
    review itself), oldest first. The extract is logged as a disclosure."""
    require_auditor(actor)
    subject = session.get(Subject, subject_id) if 1 <= subject_id <= 2**31 - 1 else None
    if subject is None:
        raise NotFound("person not found")
    case_ids = person_case_ids(session, subject_id)
    cases = {c.id: c for c in session.execute(select(Case).where(Case.id.in_(case_ids))).scalars()}
    protected_ids = _protected_case_ids(session)
    protected = any(cid in protected_ids for cid in case_ids)
    units = {u.id: u.name for u in session.execute(select(Unit)).scalars()}
    entries = session.execute(
        select(AuditEntry)
        .where(
            AuditEntry.case_id.in_(case_ids),
            AuditEntry.actor_id.is_not(None),
            AuditEntry.outcome == "allowed",
            not_(AuditEntry.action.startswith(AUDIT_PREFIX)),
        )
        .order_by(AuditEntry.seq)
    ).scalars()
    names: dict[int, str] = {}
    rows = []
    for e in entries:
        assert e.actor_id is not None and e.case_id is not None
        if e.actor_id not in names:
            user = session.get(User, e.actor_id)
            names[e.actor_id] = user.display_name if user else (e.actor_name or "")
        rows.append(
            ExtractRow(
                ts=e.ts,
                case_number=cases[e.case_id].number if e.case_id in cases else f"#{e.case_id}",
                actor_name=names[e.actor_id],
                roles=tuple(
                    (role, units.get(unit) if unit else None)
                    for role, unit in parse_roles(e.actor_roles)
                ),
                action=e.action,
                purpose=e.purpose,
            )
        )
    audit.record(
        session,
        actor,
        "audit:extract_created",
        case_id=subject.case_id,
        object_type="subject",
        object_id=subject_id,
        purpose=purpose[:300] or "data subject request",
        details={"cases": len(case_ids), "rows": len(rows)},
    )
    return AccessExtract(
        subject_id=subject_id,
        subject_label=None if protected else (subject.name or subject.alias),
        protected=protected,
        case_numbers=tuple(cases[c].number for c in case_ids if c in cases),
        rows=tuple(rows),
        generated_at=utcnow(),
    )


__all__ = [
    "FINDINGS",
    "AccessExtract",
    "AuditEntryView",
    "AuditFilter",
    "AuditPage",
    "BurstSignal",
    "ExtractRow",
    "ReviewItemView",
    "ReviewSummary",
    "ReviewView",
    "Signals",
    "SubjectHit",
    "access_extract",
    "draw_sample",
    "find_bursts",
    "find_subjects",
    "list_reviews",
    "logged_actions",
    "logged_users",
    "period",
    "record_finding",
    "review_view",
    "search_log",
    "signals",
]
