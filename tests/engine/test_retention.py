"""Retention (gallring, engine/retention.py and bpmn/retention.toml; security.md §2.4, LEG-6).

A closed adult case whose last entry is more than five years old is listed by the dry run (case
number and dates, no personal data) and erased by apply: every row with personal data is gone,
anonymous counts stay, the erasure is audited and the audit chain still verifies. Cases still
running, too recent, on legal hold, with a placement decision (12 kap. 2 § SoL) or of a person
born on a research day are kept. The erasure ledger brings an erasure back after a restore.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from engine_testkit import app_on, factory, start_committed
from flask import Flask
from retention_kit import (
    CHILD_NOT_PLACED,
    CHILD_PLACED,
    CLOSED_ADULT,
    approved_types,
    luhn_pnr,
    number_of,
    run_scenario,
)
from sqlalchemy import func, select, text

from engine import audit, retention
from engine.audit import SYSTEM
from engine.db import Base
from engine.models import AuditEntry, Case
from engine.models.retention import ErasureRecord, RetentionStatistic

TODAY = date(2026, 11, 28)
LONG_AGO = datetime(2019, 3, 4, 9, 0, tzinfo=UTC)
RECENT = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
NAME = "Gallringsperson Ettan"
PNR = luhn_pnr("19850612")


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    yield from app_on(database_url, tmp_path)


@pytest.fixture
def policy() -> retention.Policy:
    return retention.load_policy(Path(__file__).resolve().parents[2] / "bpmn")


@pytest.fixture
def ledger(tmp_path: Path) -> retention.Ledger:
    return retention.Ledger(tmp_path / "ledger" / "erasure-ledger.jsonl")


def _old_case(app: Flask, **kwargs: object) -> int:
    return run_scenario(app, CLOSED_ADULT, LONG_AGO, name=NAME, pnr=PNR, **kwargs)  # type: ignore[arg-type]


def _rows_of_case(app: Flask, case_id: int) -> dict[str, int]:
    """How many rows each table holds that point at the case (by any case_id-like column)."""
    counts = {}
    with app.extensions["lotsen_engine"].connect() as conn:
        for table in Base.metadata.sorted_tables:
            for column in ("case_id", "from_case_id", "to_case_id"):
                if column in table.c and table.name != "audit_log":
                    n = conn.execute(
                        text(f"SELECT count(*) FROM {table.name} WHERE {column} = :c"),
                        {"c": case_id},
                    ).scalar_one()
                    if n and table.name != "erasure_records":
                        counts[f"{table.name}.{column}"] = int(n)
        n = conn.execute(text("SELECT count(*) FROM cases WHERE id = :c"), {"c": case_id})
        counts["cases"] = int(n.scalar_one())
    return {k: v for k, v in counts.items() if v}


def test_the_policy_is_data_with_a_legal_basis(policy: retention.Policy) -> None:
    for procedure in ("identification", "victim_support", "housing_notification"):
        rule = policy.for_procedure(procedure)
        assert rule.years == 5 and "12 kap. 1 §" in rule.legal_basis
    child = policy.for_procedure("child_safeguarding")
    assert "D-B3" in child.keep_if_decisions and "12 kap. 2 §" in child.keep_reason
    assert policy.for_procedure("unknown_procedure").years == policy.default.years


def test_a_broken_policy_is_refused(tmp_path: Path) -> None:
    (tmp_path / "retention.toml").write_text("[defaults]\nyears_after_last_entry = -1\n")
    with pytest.raises(retention.RetentionError, match="years_after_last_entry"):
        retention.load_policy(tmp_path)
    with pytest.raises(retention.RetentionError, match="missing"):
        retention.load_policy(tmp_path / "nowhere")


def test_dry_run_lists_only_due_closed_cases_and_erases_nothing(
    app: Flask, policy: retention.Policy
) -> None:
    old = _old_case(app)
    recent = run_scenario(app, CLOSED_ADULT, RECENT, name="Ny Person")
    running = start_committed(app)
    report = retention.dry_run(factory(app), policy, TODAY)
    assert [c.case_id for c in report.erased] == [old]
    candidate = report.erased[0]
    assert candidate.last_entry_on == LONG_AGO.date()
    assert candidate.due_on == date(2024, 3, 4) and candidate.finish_by == date(2025, 12, 31)
    listing = "\n".join(retention.iter_lines(report))
    assert number_of(app, old) in listing
    assert NAME not in listing and PNR not in listing and "Gallrings" not in listing
    for case_id in (old, recent, running):
        assert _rows_of_case(app, case_id)["cases"] == 1
    # five years after the last entry, not before
    assert not retention.dry_run(factory(app), policy, date(2024, 3, 3)).erased


def test_apply_erases_personal_data_keeps_statistics_and_audits(
    app: Flask, policy: retention.Policy, ledger: retention.Ledger
) -> None:
    old = _old_case(app)
    keep = start_committed(app)
    number = number_of(app, old)
    decisions = approved_types(app, old)
    assert decisions == {"D-A6", "D-A7", "D-A8"}
    before = _rows_of_case(app, old)
    assert before["subjects.case_id"] and before["journal_notes.case_id"]
    assert before["process_instances.case_id"] and before["decisions.case_id"]

    report = retention.apply(factory(app), policy, ledger, TODAY)
    assert [c.case_number for c in report.erased] == [number]
    assert _rows_of_case(app, old) == {}
    assert _rows_of_case(app, keep)["cases"] == 1
    with factory(app)() as s:
        record = s.execute(select(ErasureRecord)).scalar_one()
        assert (record.case_number, record.due_on) == (number, date(2024, 3, 4))
        stats = {
            (r.procedure, r.unit_key, r.year, r.measure, r.value): r.count
            for r in s.execute(select(RetentionStatistic)).scalars()
        }
        assert stats[("identification", "vuxenenheten", 2019, "cases", "")] == 1
        assert stats[("identification", "vuxenenheten", 2019, "decision", "D-A8:CLOSE")] == 1
        erased = s.execute(select(AuditEntry).where(AuditEntry.action == "case:erased")).scalars()
        assert [(e.case_id, e.object_id) for e in erased] == [(old, number)]
        assert audit.verify_chain(s) is None
        # the access log (it stays) holds no personal data of the erased person anywhere
        entries = s.execute(select(AuditEntry)).scalars().all()
        assert any(e.case_id == old for e in entries)
        for entry in entries:
            blob = json.dumps(
                [entry.purpose, entry.details, entry.object_id, entry.actor_name],
                ensure_ascii=False,
            )
            assert NAME not in blob and PNR not in blob and "Gallrings" not in blob
            assert PNR.replace("-", "") not in blob
    # the ledger names the case by number and dates only
    lines = ledger.entries()
    assert [line["case_number"] for line in lines] == [number]
    assert NAME not in ledger.path.read_text() and PNR not in ledger.path.read_text()
    # a second run finds nothing more
    assert not retention.apply(factory(app), policy, ledger, TODAY).erased


def test_placement_decisions_holds_and_research_days_keep_a_case(
    app: Flask, policy: retention.Policy, ledger: retention.Ledger
) -> None:
    child = run_scenario(app, CHILD_PLACED, LONG_AGO, name="Barn Person")
    assert "D-B3" in approved_types(app, child)  # a placement
    not_placed = run_scenario(app, CHILD_NOT_PLACED, LONG_AGO, name="Barn Tva")
    research = run_scenario(app, CLOSED_ADULT, LONG_AGO, pnr=luhn_pnr("19850615"))
    held = _old_case(app)
    with factory(app)() as s:
        case = s.get(Case, held)
        assert case is not None
        retention.place_hold(s, SYSTEM, case, "överklagande pågår")
        s.commit()
    report = retention.apply(factory(app), policy, ledger, TODAY)
    assert [c.case_id for c in report.erased] == [not_placed]  # a child case without placement
    kept = {c.case_id: c.kept_because for c in report.kept}
    assert kept[child] is not None and "D-B3" in kept[child]
    assert kept[research] == "research exemption (birth day)"
    assert kept[held] == "legal hold"
    assert "överklagande" not in "\n".join(retention.iter_lines(report))
    for case_id in (child, research, held):
        assert _rows_of_case(app, case_id)["cases"] == 1


def test_a_restored_backup_gets_its_erasures_back(
    database_url: str, app: Flask, policy: retention.Policy, ledger: retention.Ledger
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("file-copy backup; PostgreSQL: tests/security (pg_dump)")
    old = _old_case(app)
    number = number_of(app, old)
    db_file = Path(database_url.removeprefix("sqlite:///"))
    engine = app.extensions["lotsen_engine"]
    backup = db_file.with_suffix(".backup")
    _sqlite_backup(db_file, backup)

    retention.apply(factory(app), policy, ledger, TODAY)
    assert _rows_of_case(app, old) == {}

    engine.dispose()  # restore last night's backup
    for suffix in ("-wal", "-shm"):
        Path(str(db_file) + suffix).unlink(missing_ok=True)
    _sqlite_backup(backup, db_file)
    assert _rows_of_case(app, old)["cases"] == 1  # the erased case is back ...

    assert retention.reapply(factory(app), ledger) == [number]
    assert _rows_of_case(app, old) == {}  # ... and gone again
    with factory(app)() as s:
        assert s.execute(select(func.count()).select_from(ErasureRecord)).scalar_one() == 1
        assert audit.verify_chain(s) is None
    assert retention.reapply(factory(app), ledger) == []  # idempotent


def _sqlite_backup(source: Path, target: Path) -> None:
    """SQLite's online backup (what a nightly backup job of the file would run)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def test_reapply_never_erases_a_new_case_that_reused_a_number(
    app: Flask, policy: retention.Policy, ledger: retention.Ledger
) -> None:
    old = _old_case(app)
    number = number_of(app, old)
    retention.apply(factory(app), policy, ledger, TODAY)
    newer = start_committed(app)
    with factory(app)() as s:  # a case registered after a restore got the same number
        case = s.get(Case, newer)
        assert case is not None
        case.number = number
        s.commit()
    assert retention.reapply(factory(app), ledger) == []
    assert _rows_of_case(app, newer)["cases"] == 1


def test_a_tampered_ledger_is_refused(
    app: Flask, policy: retention.Policy, ledger: retention.Ledger
) -> None:
    _old_case(app)
    retention.apply(factory(app), policy, ledger, TODAY)
    line = json.loads(ledger.path.read_text())
    line["case_number"] = "AR-2019-99999"
    ledger.path.write_text(json.dumps(line) + "\n")
    with pytest.raises(retention.RetentionError, match="chain is broken"):
        retention.reapply(factory(app), ledger)
