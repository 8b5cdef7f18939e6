"""Retention (gallring): find the closed cases whose retention period has run out and erase them.

The policy is data (``bpmn/retention.toml``): a period per procedure counted from the case's last
entry, decision types that keep a case whole (12 kap. 2 § SoL), a research exemption by birth
day. Legal holds (:class:`~engine.models.retention.RetentionHold`) keep single cases.

Erasing a case deletes every row of personal data tied to it (subjects, journal, process state
with the task data, drafts, decisions with their reasons, documents with their content,
consents) and the case row itself. What survives is anonymous: counts per procedure, unit, year
and outcome (:class:`~engine.models.retention.RetentionStatistic`) and the erasure record (case
number and dates). The access log is not touched: its entries hold ids, never personal data, so
the hash chain still verifies after an erasure.

**Backups.** A restore of a backup taken before an erasure would bring the case back. So each
erasure is first appended to the *erasure ledger*, a hash-chained JSON-lines file kept outside the
database (``LOTSEN_ERASURE_LEDGER``, default ``instance/erasure-ledger.jsonl``; back it up
separately and never restore it from an older copy). :func:`reapply` erases again every case the
ledger names that is present in the database; run it after every restore (``lotsen retention
--reapply``). The ledger is written *before* the database commit: a crash in between leaves a
ledger line for a case that is still present, which the next reapply (or run) erases. The other
order could lose an erasure.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tomllib
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, delete, exists, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from engine import audit
from engine.audit import SYSTEM, Actor
from engine.db import Base, unit_of_work, utcnow
from engine.models import (
    Case,
    Decision,
    Document,
    JournalNote,
    OpenTask,
    ProcessInstance,
    Subject,
    Unit,
)
from engine.models.retention import ErasureRecord, RetentionHold, RetentionStatistic

POLICY_FILE = "retention.toml"
GENESIS = "0" * 64


class RetentionError(RuntimeError):
    """The policy or the ledger is unusable (the message says why)."""


# --- policy -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """The retention rule of one procedure."""

    procedure: str
    years: int
    legal_basis: str
    keep_if_decisions: frozenset[str] = frozenset()
    keep_reason: str = ""
    research_birth_days: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Policy:
    """Rules by procedure plus the default for procedures without their own."""

    default: Rule
    rules: dict[str, Rule] = field(default_factory=dict)

    def for_procedure(self, procedure: str) -> Rule:
        return self.rules.get(procedure) or Rule(
            procedure=procedure,
            years=self.default.years,
            legal_basis=self.default.legal_basis,
            research_birth_days=self.default.research_birth_days,
        )


def _rule(name: str, raw: dict[str, Any], default: Rule | None) -> Rule:
    years = raw.get("years_after_last_entry", default.years if default else None)
    if not isinstance(years, int) or years < 0:
        raise RetentionError(f"[{name}]: years_after_last_entry must be a whole number >= 0")
    basis = raw.get("legal_basis", default.legal_basis if default else "")
    if not basis:
        raise RetentionError(f"[{name}]: legal_basis is required")
    days = raw.get("research_birth_days", sorted(default.research_birth_days) if default else [])
    if not all(isinstance(d, int) and 1 <= d <= 31 for d in days):
        raise RetentionError(f"[{name}]: research_birth_days must be days of the month")
    return Rule(
        procedure=name,
        years=years,
        legal_basis=str(basis),
        keep_if_decisions=frozenset(raw.get("keep_if_decisions", [])),
        keep_reason=str(raw.get("keep_reason", "")),
        research_birth_days=frozenset(days),
    )


def load_policy(bpmn_dir: Path) -> Policy:
    """Read ``bpmn/retention.toml``."""
    path = bpmn_dir / POLICY_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RetentionError(f"{path} is missing: no retention policy") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RetentionError(f"{path}: {exc}") from exc
    default = _rule("defaults", raw.get("defaults", {}), None)
    rules = {
        name: _rule(name, body, default)
        for name, body in raw.items()
        if name != "defaults" and isinstance(body, dict)
    }
    return Policy(default=default, rules=rules)


# --- what is due --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A closed case and what the policy says about it. No personal data."""

    case_id: int
    case_number: str
    procedure: str
    created_at: datetime
    last_entry_on: date
    due_on: date
    finish_by: date
    legal_basis: str
    kept_because: str | None = None

    @property
    def erasable(self) -> bool:
        return self.kept_because is None


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _latest(values: Iterable[datetime | None]) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def last_entry(session: Session, case: Case) -> datetime:
    """The latest moment anything was entered in the case record."""
    cid = case.id
    candidates = [
        case.created_at,
        case.received_at,
        case.closed_at,
        session.execute(
            select(func.max(JournalNote.created_at)).where(JournalNote.case_id == cid)
        ).scalar_one(),
        session.execute(
            select(func.max(OpenTask.completed_at)).where(OpenTask.case_id == cid)
        ).scalar_one(),
        session.execute(
            select(func.max(Decision.proposed_at)).where(Decision.case_id == cid)
        ).scalar_one(),
        session.execute(
            select(func.max(Decision.decided_at)).where(Decision.case_id == cid)
        ).scalar_one(),
        session.execute(
            select(func.max(Document.created_at)).where(Document.case_id == cid)
        ).scalar_one(),
        session.execute(
            select(func.max(ProcessInstance.updated_at)).where(ProcessInstance.case_id == cid)
        ).scalar_one(),
    ]
    latest = _latest(_aware(v) for v in candidates)
    assert latest is not None
    return latest


def _aware(value: Any) -> datetime | None:
    """``max()`` in SQL returns the raw value on SQLite (a string or naive datetime)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        from datetime import UTC

        value = value.replace(tzinfo=UTC)
    return value  # type: ignore[no-any-return]


def _birth_day(text: str | None) -> int | None:
    """The day of the month from a birth date or personnummer (YYYY-MM-DD, YYYYMMDD-NNNN ...)."""
    if not text:
        return None
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) >= 8 and digits[:2] in ("19", "20"):
        day = digits[6:8]
    elif len(digits) >= 6:
        day = digits[4:6]
    else:
        return None
    value = int(day)
    if value > 60:  # samordningsnummer: day + 60
        value -= 60
    return value if 1 <= value <= 31 else None


def _kept_because(session: Session, case: Case, rule: Rule) -> str | None:
    hold = session.execute(
        select(RetentionHold).where(RetentionHold.case_id == case.id)
    ).scalar_one_or_none()
    if hold is not None:
        return "legal hold"  # the hold's reason is free text: not printed
    if rule.years == 0:
        return "the policy keeps this procedure"
    if rule.keep_if_decisions:
        approved = session.execute(
            select(Decision.decision_type, Decision.outcome).where(
                Decision.case_id == case.id, Decision.status == "approved"
            )
        ).all()
        for kind, outcome in approved:
            if kind in rule.keep_if_decisions or f"{kind}:{outcome}" in rule.keep_if_decisions:
                return f"decision {kind}: {rule.keep_reason or 'kept by the policy'}"
    if rule.research_birth_days:
        subjects = session.execute(select(Subject).where(Subject.case_id == case.id)).scalars()
        for subject in subjects:
            day = _birth_day(subject.personnummer) or _birth_day(subject.birth_date)
            if day in rule.research_birth_days:
                return "research exemption (birth day)"
    return None


def _is_closed(session: Session, case: Case) -> bool:
    if case.closed_at is not None:
        return True
    running = session.execute(
        select(
            exists().where(ProcessInstance.case_id == case.id, ProcessInstance.status == "running")
        )
    ).scalar_one()
    return not running


def assess(session: Session, policy: Policy, today: date) -> list[Candidate]:
    """Every closed case whose retention period has run out by ``today`` (kept ones included,
    with the reason), oldest due date first."""
    found = []
    for case in session.execute(select(Case).order_by(Case.id)).scalars():
        if not _is_closed(session, case):
            continue
        rule = policy.for_procedure(case.procedure)
        last = last_entry(session, case).date()
        due = _add_years(last, rule.years) if rule.years else date.max
        if rule.years and due > today:
            continue
        kept = _kept_because(session, case, rule)
        if rule.years == 0:
            continue
        found.append(
            Candidate(
                case_id=case.id,
                case_number=case.number,
                procedure=case.procedure,
                created_at=_aware(case.created_at) or case.created_at,
                last_entry_on=last,
                due_on=due,
                finish_by=date(due.year + 1, 12, 31),
                legal_basis=rule.legal_basis,
                kept_because=kept,
            )
        )
    return sorted(found, key=lambda c: (c.due_on, c.case_id))


#: Roles that may approve a gallring run (LEG-6: the dry run is approved by a supervisor).
APPROVER_ROLES = frozenset({"supervisor", "unit_manager"})


def approver(session: Session, username: str) -> Actor:
    """The active supervisor or unit manager who approved a run, as the actor of its erasures."""
    from engine.models import User

    user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    roles = frozenset((r.role, r.unit_id) for r in user.roles) if user else frozenset()
    if user is None or not user.active or not {r for r, _ in roles} & APPROVER_ROLES:
        raise RetentionError(
            "a gallring run must be approved by an active supervisor or unit manager"
        )
    return Actor(user_id=user.id, username=user.username, roles=roles)


def place_hold(session: Session, actor: Actor, case: Case, reason: str) -> RetentionHold:
    """Keep ``case`` out of every retention run until the hold is lifted."""
    hold = RetentionHold(case_id=case.id, reason=reason[:200], placed_by=actor.username)
    session.add(hold)
    audit.record(
        session,
        actor,
        "retention:hold_placed",
        case_id=case.id,
        object_type="case",
        object_id=case.number,
    )
    return hold


# --- the ledger ---------------------------------------------------------------------------------


class Ledger:
    """The append-only erasure ledger file (JSON lines, each chained to the one before)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @staticmethod
    def _hash(prev: str, body: dict[str, Any]) -> str:
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(prev.encode("ascii") + canonical).hexdigest()

    def entries(self) -> list[dict[str, Any]]:
        """Every line, after checking the chain (a changed or removed line is an error)."""
        if not self.path.exists():
            return []
        prev = GENESIS
        found = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RetentionError(f"{self.path}:{number}: not JSON") from exc
            body = {k: v for k, v in entry.items() if k not in ("prev", "hash")}
            if entry.get("prev") != prev or self._hash(prev, body) != entry.get("hash"):
                raise RetentionError(f"{self.path}:{number}: the ledger chain is broken")
            prev = entry["hash"]
            found.append(body)
        return found

    def append(self, body: dict[str, Any]) -> None:
        """Add one line durably (flushed and fsynced before returning)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                entries = self.entries()
                prev = GENESIS
                if entries:
                    last = self.path.read_text(encoding="utf-8").splitlines()[-1]
                    prev = json.loads(last)["hash"]
                line = {**body, "prev": prev, "hash": self._hash(prev, body)}
                handle.write(json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def ledger_path(settings: Any) -> Path:
    """The ledger file: ``LOTSEN_ERASURE_LEDGER``, else ``instance/erasure-ledger.jsonl``."""
    configured = getattr(settings, "erasure_ledger", None)
    return Path(configured) if configured else Path(settings.instance_dir) / "erasure-ledger.jsonl"


# --- erasure ------------------------------------------------------------------------------------


def _bump(session: Session, procedure: str, unit: str, year: int, measure: str, value: str) -> None:
    row = session.execute(
        select(RetentionStatistic).where(
            RetentionStatistic.procedure == procedure,
            RetentionStatistic.unit_key == unit,
            RetentionStatistic.year == year,
            RetentionStatistic.measure == measure,
            RetentionStatistic.value == value,
        )
    ).scalar_one_or_none()
    if row is None:
        row = RetentionStatistic(
            procedure=procedure, unit_key=unit, year=year, measure=measure, value=value, count=0
        )
        session.add(row)
    row.count += 1


def _keep_statistics(session: Session, case: Case) -> None:
    unit = session.get(Unit, case.unit_id)
    unit_key = unit.key if unit else str(case.unit_id)
    year = (_aware(case.received_at) or case.created_at).year
    _bump(session, case.procedure, unit_key, year, "cases", "")
    outcomes = session.execute(
        select(Decision.decision_type, Decision.outcome).where(
            Decision.case_id == case.id, Decision.status == "approved"
        )
    ).all()
    for decision_type, outcome in outcomes:
        _bump(session, case.procedure, unit_key, year, "decision", f"{decision_type}:{outcome}")


_HANDLED = {"cases"}


def _case_tables() -> list[tuple[Table, Any]]:
    """Tables with a foreign key to ``cases.id`` (children first), with that column."""
    found = []
    for table in reversed(Base.metadata.sorted_tables):
        if table.name in _HANDLED:
            continue
        for column in table.columns:
            for fk in column.foreign_keys:
                if fk.column.table.name == "cases" and fk.column.name == "id":
                    found.append((table, column))
    return found


def _delete_case(session: Session, case_id: int) -> None:
    """Delete the case and every row tied to it. Rows of other records that merely point at
    the case (a nullable link) lose the link instead."""
    # The decisions point at the instances and the tasks at the decisions: cut those links
    # first so that the deletes below can run table by table on every backend.
    session.execute(update(OpenTask).where(OpenTask.case_id == case_id).values(decision_id=None))
    session.execute(delete(Document).where(Document.case_id == case_id))
    for table, column in _case_tables():
        cascades = any(fk.ondelete == "CASCADE" for fk in column.foreign_keys)
        if column.nullable and not cascades:
            session.execute(update(table).where(column == case_id).values({column.name: None}))
            continue
        _delete_children(session, table, column, case_id)
        session.execute(delete(table).where(column == case_id))
    session.execute(delete(Case).where(Case.id == case_id))


def _delete_children(session: Session, table: Table, column: Any, case_id: int) -> None:
    """Delete rows of tables that point at ``table``'s rows of the case (drafts -> tasks)."""
    keys = list(table.primary_key.columns)
    if len(keys) != 1:
        return
    ids = select(keys[0]).where(column == case_id)
    for child in Base.metadata.sorted_tables:
        for child_col in child.columns:
            for fk in child_col.foreign_keys:
                if fk.column.table is table and child.name not in ("cases",):
                    has_case = "case_id" in child.c and any(
                        f.column.table.name == "cases" for f in child.c["case_id"].foreign_keys
                    )
                    if has_case:
                        continue  # handled as a case table of its own
                    session.execute(delete(child).where(child_col.in_(ids)))


def erase_case(
    session: Session,
    actor: Actor,
    candidate: Candidate,
    *,
    run_id: str,
    source: str = "retention",
) -> None:
    """Erase one case inside the caller's transaction: statistics, rows, record, audit entry."""
    case = session.get(Case, candidate.case_id)
    if case is None:
        return
    _keep_statistics(session, case)
    session.expunge(case)
    _delete_case(session, candidate.case_id)
    existing = session.execute(
        select(ErasureRecord).where(ErasureRecord.case_number == candidate.case_number)
    ).scalar_one_or_none()
    if existing is None:
        session.add(
            ErasureRecord(
                case_id=candidate.case_id,
                case_number=candidate.case_number,
                procedure=candidate.procedure,
                rule=candidate.procedure,
                last_entry_on=candidate.last_entry_on,
                due_on=candidate.due_on,
                erased_at=utcnow(),
                source=source,
                run_id=run_id,
            )
        )
    audit.record(
        session,
        actor,
        "case:erased",
        case_id=candidate.case_id,
        object_type="case",
        object_id=candidate.case_number,
        purpose="gallring",
        details={
            "procedure": candidate.procedure,
            "due_on": candidate.due_on.isoformat(),
            "source": source,
            "run": run_id,
        },
    )


def _ledger_line(candidate: Candidate, run_id: str) -> dict[str, Any]:
    return {
        "case_id": candidate.case_id,
        "case_number": candidate.case_number,
        "case_created_at": candidate.created_at.isoformat(),
        "procedure": candidate.procedure,
        "last_entry_on": candidate.last_entry_on.isoformat(),
        "due_on": candidate.due_on.isoformat(),
        "erased_at": utcnow().isoformat(),
        "run": run_id,
    }


@dataclass
class RunReport:
    """What a run did: the erased candidates and the kept ones."""

    run_id: str
    erased: list[Candidate] = field(default_factory=list)
    kept: list[Candidate] = field(default_factory=list)


def dry_run(
    factory: sessionmaker[Session], policy: Policy, today: date, actor: Actor = SYSTEM
) -> RunReport:
    """What :func:`apply` would erase today (and what the policy keeps); audited, nothing erased."""
    report = RunReport(run_id=f"dry-{uuid.uuid4().hex[:12]}")
    with unit_of_work(factory) as session:
        found = assess(session, policy, today)
        report.erased = [c for c in found if c.erasable]
        report.kept = [c for c in found if not c.erasable]
        audit.record(
            session,
            actor,
            "retention:dry_run",
            purpose="gallring",
            details={"due": len(report.erased), "kept": len(report.kept), "run": report.run_id},
        )
    return report


def apply(
    factory: sessionmaker[Session],
    policy: Policy,
    ledger: Ledger,
    today: date,
    actor: Actor = SYSTEM,
) -> RunReport:
    """Erase every case due today, one transaction per case, each first written to the ledger."""
    report = RunReport(run_id=f"run-{uuid.uuid4().hex[:12]}")
    with factory() as session:
        found = assess(session, policy, today)
    report.kept = [c for c in found if not c.erasable]
    for candidate in (c for c in found if c.erasable):
        ledger.append(_ledger_line(candidate, report.run_id))
        with unit_of_work(factory) as session:
            erase_case(session, actor, candidate, run_id=report.run_id)
        report.erased.append(candidate)
    with unit_of_work(factory) as session:
        audit.record(
            session,
            actor,
            "retention:applied",
            purpose="gallring",
            details={"erased": len(report.erased), "kept": len(report.kept), "run": report.run_id},
        )
    return report


def _matches(case: Case, line: dict[str, Any]) -> bool:
    """The ledger names this very case (not a later case that reused its number)."""
    created = _aware(case.created_at)
    try:
        wanted = datetime.fromisoformat(str(line.get("case_created_at")))
    except ValueError:
        return False
    return created is not None and int(line.get("case_id", -1)) == case.id and created == wanted


def reapply(factory: sessionmaker[Session], ledger: Ledger, actor: Actor = SYSTEM) -> list[str]:
    """Erase again every ledger case found in the database (after a restore); return numbers.

    Also restores missing erasure records, so the database mirrors the ledger again.
    """
    lines = ledger.entries()
    erased: list[str] = []
    run_id = f"reapply-{uuid.uuid4().hex[:12]}"
    for line in lines:
        number = str(line["case_number"])
        with unit_of_work(factory) as session:
            case = session.execute(select(Case).where(Case.number == number)).scalar_one_or_none()
            if case is not None and _matches(case, line):
                candidate = Candidate(
                    case_id=case.id,
                    case_number=number,
                    procedure=case.procedure,
                    created_at=_aware(case.created_at) or case.created_at,
                    last_entry_on=date.fromisoformat(line["last_entry_on"]),
                    due_on=date.fromisoformat(line["due_on"]),
                    finish_by=date.fromisoformat(line["due_on"]),
                    legal_basis="ledger",
                )
                erase_case(session, actor, candidate, run_id=run_id, source="reapply")
                erased.append(number)
            elif case is None:
                _restore_record(session, line, run_id)
    with unit_of_work(factory) as session:
        audit.record(
            session,
            actor,
            "retention:reapplied",
            purpose="gallring",
            details={"ledger_lines": len(lines), "erased": len(erased), "run": run_id},
        )
    return erased


def _restore_record(session: Session, line: dict[str, Any], run_id: str) -> None:
    number = str(line["case_number"])
    present = session.execute(
        select(ErasureRecord.id).where(ErasureRecord.case_number == number)
    ).first()
    if present is not None:
        return
    session.add(
        ErasureRecord(
            case_id=int(line["case_id"]),
            case_number=number,
            procedure=str(line["procedure"]),
            rule=str(line["procedure"]),
            last_entry_on=date.fromisoformat(line["last_entry_on"]),
            due_on=date.fromisoformat(line["due_on"]),
            erased_at=datetime.fromisoformat(line["erased_at"]),
            source="reapply",
            run_id=run_id,
        )
    )


def iter_lines(report: RunReport) -> Iterator[str]:
    """The dry-run/apply listing: case numbers, procedures and dates only."""
    for c in report.erased:
        yield (
            f"{c.case_number}\t{c.procedure}\tlast entry {c.last_entry_on}\t"
            f"due {c.due_on}\tfinish by {c.finish_by}"
        )
    for c in report.kept:
        yield f"{c.case_number}\t{c.procedure}\tKEPT: {c.kept_because}"


def today() -> date:
    """Today's date (UTC), from the replaceable clock."""
    return utcnow().date()
