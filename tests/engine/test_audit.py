"""The access log: a hash chain that detects edits and deletions, and entries that say who,
what, which case, when (UTC) and why."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from engine_testkit import SCENARIOS, app_on, factory, run_scenario, start_committed
from flask import Flask
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from engine import access, audit
from engine.audit_protection import install_pg_protection
from engine.db import clock
from engine.models import AuditEntry
from tests.conftest import actor


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The app on a fresh database (a copy of a prepared SQLite template); on PostgreSQL the
    audit tables are append-only (triggers), as after the migrations."""
    for application in app_on(database_url, tmp_path):
        with application.extensions["lotsen_engine"].begin() as conn:
            install_pg_protection(conn)  # a no-op on SQLite
        yield application


@pytest.fixture
def scenario_app(app: Flask) -> Flask:
    """The app after a complete scenario (about a hundred audit entries)."""
    run_scenario(app, next(p for p in SCENARIOS if p.parent.parent.name == "identification"))
    return app


def _sql(app: Flask, statement: str, **params: object) -> None:
    """Tamper with the log as a superuser would: on PostgreSQL with the append-only triggers
    switched off for this transaction only."""
    with app.extensions["lotsen_engine"].begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(statement), params)


def _last_seq(session: Session) -> int:
    return int(session.execute(select(func.max(AuditEntry.seq))).scalar_one())


def _verify(app: Flask) -> audit.ChainBreak | None:
    with factory(app)() as s:
        return audit.verify_chain(s)


def _cli(app: Flask) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["lotsen", "verify-audit"])
    output = result.output + (getattr(result, "stderr", "") or "")
    return result.exit_code, output


def test_chain_verifies_after_a_full_scenario(scenario_app: Flask) -> None:
    assert _verify(scenario_app) is None
    with factory(scenario_app)() as s:
        entries = s.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars().all()
        assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
        assert len({e.entry_hash for e in entries}) == len(entries)
        actions = {e.action for e in entries}
        assert {
            "case:created",
            "task:completed",
            "decision:proposed",
            "decision:approved",
        } <= actions
    code, output = _cli(scenario_app)
    assert code == 0, output
    assert "intact" in output


def test_entries_say_who_what_which_case_and_when(scenario_app: Flask) -> None:
    with factory(scenario_app)() as s:
        entries = (
            s.execute(
                select(AuditEntry).where(AuditEntry.case_id.is_not(None)).order_by(AuditEntry.seq)
            )
            .scalars()
            .all()
        )
        assert entries
        for entry in entries:
            assert entry.actor_id is not None and entry.actor_name, entry.action
            assert entry.actor_roles, entry.action
            assert entry.action and ":" in entry.action
            assert entry.outcome in {"allowed", "denied"}
            assert entry.ts.tzinfo is not None and entry.ts.utcoffset() == timedelta(0)
        completed = [e for e in entries if e.action == "task:completed"]
        assert all(e.object_type == "task" and e.object_id and e.purpose for e in completed)
        # The log holds field names, never the values typed into the forms.
        raw = json.dumps([e.details for e in entries], ensure_ascii=False)
        assert "Nicu" not in raw and "tigga" not in raw


def test_reading_a_case_is_logged_with_a_purpose(app: Flask) -> None:
    case_id = start_committed(app)
    with factory(app)() as s:
        who = actor(s, "arbetsledare")
        before = datetime.now(UTC)
        access.access_case(s, who, case_id, purpose="supervision")
        s.commit()
        entry = s.execute(select(AuditEntry).where(AuditEntry.seq == _last_seq(s))).scalar_one()
    assert entry.action == "case:viewed"
    assert (entry.case_id, entry.actor_id, entry.actor_name) == (
        case_id,
        who.user_id,
        "arbetsledare",
    )
    assert entry.purpose == "supervision (oversight)"
    assert entry.ts.tzinfo is not None and entry.ts.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=5) <= entry.ts <= datetime.now(UTC) + timedelta(seconds=5)
    assert entry.actor_roles == f"supervisor@{next(iter(who.roles))[1]}"


@pytest.mark.parametrize("column", ["details", "actor_name", "purpose", "case_id"])
def test_editing_a_row_is_detected_at_that_row(scenario_app: Flask, column: str) -> None:
    with factory(scenario_app)() as s:
        seq = _last_seq(s) // 2
        dialect = s.get_bind().dialect.name
    value: object = {
        "details": '{"fields": []}',
        "actor_name": "someone_else",
        "purpose": "nothing to see",
        "case_id": 999,
    }[column]
    target = "CAST(:v AS json)" if column == "details" and dialect == "postgresql" else ":v"
    _sql(scenario_app, f"UPDATE audit_log SET {column} = {target} WHERE seq = :s", v=value, s=seq)
    broken = _verify(scenario_app)
    assert broken is not None and broken.seq == seq
    code, output = _cli(scenario_app)
    assert code == 1
    assert f"entry {seq}" in output and "BROKEN" in output


def test_rehashing_an_edited_row_breaks_the_next_link(scenario_app: Flask) -> None:
    with factory(scenario_app)() as s:
        seq = _last_seq(s) // 2
        entry = s.execute(select(AuditEntry).where(AuditEntry.seq == seq)).scalar_one()
        entry.actor_name = "someone_else"
        forged = audit.compute_hash(entry.prev_hash, entry)
    _sql(
        scenario_app,
        "UPDATE audit_log SET actor_name = 'someone_else', entry_hash = :h WHERE seq = :s",
        h=forged,
        s=seq,
    )
    broken = _verify(scenario_app)
    assert broken is not None and broken.seq == seq + 1


def test_deleting_the_last_row_is_detected(scenario_app: Flask) -> None:
    with factory(scenario_app)() as s:
        last = _last_seq(s)
    _sql(scenario_app, "DELETE FROM audit_log WHERE seq = :s", s=last)
    broken = _verify(scenario_app)
    assert broken is not None and broken.seq == last
    code, output = _cli(scenario_app)
    assert code == 1 and f"entry {last}" in output


def test_deleting_a_middle_row_is_detected(scenario_app: Flask) -> None:
    with factory(scenario_app)() as s:
        middle = _last_seq(s) // 2
    _sql(scenario_app, "DELETE FROM audit_log WHERE seq = :s", s=middle)
    broken = _verify(scenario_app)
    assert broken is not None and broken.seq == middle
    assert "missing" in broken.reason
    code, output = _cli(scenario_app)
    assert code == 1 and f"entry {middle}" in output


def test_appending_a_forged_row_is_detected(scenario_app: Flask) -> None:
    """A well-formed entry appended behind the app's back does not move the head."""
    with factory(scenario_app)() as s:
        last = s.execute(select(AuditEntry).where(AuditEntry.seq == _last_seq(s))).scalar_one()
        forged = AuditEntry(
            seq=last.seq + 1,
            ts=datetime.now(UTC),
            action="case:viewed",
            outcome="allowed",
            actor_id=None,
            actor_name="ghost",
            actor_roles=None,
            case_id=None,
            object_type=None,
            object_id=None,
            purpose=None,
            source_ip=None,
            details={},
            prev_hash=last.entry_hash,
            entry_hash="",
        )
        forged.entry_hash = audit.compute_hash(last.entry_hash, forged)
        s.add(forged)
        s.commit()
    broken = _verify(scenario_app)
    assert broken is not None


def test_verify_audit_cli_on_an_intact_fresh_log(app: Flask) -> None:
    code, output = _cli(app)
    assert code == 0 and "intact" in output


def test_chain_survives_a_clock_frozen_in_another_zone(app: Flask) -> None:
    stockholm = timezone(timedelta(hours=1))
    clock.frozen = datetime(2026, 3, 5, 11, 0, tzinfo=stockholm)
    try:
        start_committed(app)
        with factory(app)() as s:
            entry = s.execute(select(AuditEntry).where(AuditEntry.seq == _last_seq(s))).scalar_one()
            assert entry.ts == datetime(2026, 3, 5, 10, 0, tzinfo=UTC)
    finally:
        clock.frozen = None
    assert _verify(app) is None


def test_deleting_the_head_and_the_last_rows_is_detected(scenario_app: Flask) -> None:
    with factory(scenario_app)() as s:
        last = _last_seq(s)
    _sql(scenario_app, "DELETE FROM audit_head")
    _sql(scenario_app, "DELETE FROM audit_log WHERE seq > :s", s=last - 3)
    assert _verify(scenario_app) is not None
