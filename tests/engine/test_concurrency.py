"""Two people act on the same thing at the same moment (security.md §5.3 test 1).

Real threads, each with its own session from the app's session factory, released together
by a barrier. On PostgreSQL the actions lock the instance (SELECT ... FOR UPDATE); on SQLite
every transaction starts with BEGIN IMMEDIATE. Either way exactly one wins and the other
gets a Conflict, and the log and the task rows show one completion.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from engine_testkit import (
    SCREENING,
    app_on,
    factory,
    make_user,
    newest_decision,
    open_task,
    open_tasks,
    propose_assessment,
    run_to_assessment,
    start_committed,
    vuxen,
)
from flask import Flask
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from engine import actions, audit
from engine.audit import Actor
from engine.errors import Conflict, LotsenError
from engine.models import AuditEntry, OpenTask
from tests.conftest import actor

PG_ROUNDS = 20
SQLITE_ROUNDS = 5

Work = Callable[[Session, Actor], Any]


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The app on a fresh database (a copy of a prepared SQLite template)."""
    yield from app_on(database_url, tmp_path)


@pytest.fixture
def pg_app(database_url: str, request: pytest.FixtureRequest) -> Flask:
    """The app, on PostgreSQL only (skipped before any setup on SQLite)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only (row locks); the SQLite variant is below")
    return request.getfixturevalue("app")  # type: ignore[no-any-return]


@pytest.fixture
def sqlite_app(database_url: str, request: pytest.FixtureRequest) -> Flask:
    """The app, on SQLite only."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite variant")
    return request.getfixturevalue("app")  # type: ignore[no-any-return]


@pytest.fixture
def people(app: Flask) -> dict[str, Actor]:
    """Two caseworkers and two supervisors of Vuxenenheten."""
    with factory(app)() as s:
        make_user(s, "handlaggare2", [("caseworker", vuxen(s))])
        make_user(s, "arbetsledare2", [("supervisor", vuxen(s))])
        s.commit()
        return {
            n: actor(s, n) for n in ("handlaggare", "handlaggare2", "arbetsledare", "arbetsledare2")
        }


def race(
    app: Flask, who: list[Actor], work: Work, gate: Callable[[], None] | None = None
) -> list[tuple[str, Any]]:
    """Run ``work`` in one thread per actor, released together; each commits on success and
    rolls back on error. Returns ("ok", result) or ("error", exception) per thread."""
    barrier = threading.Barrier(len(who) + (1 if gate else 0))
    outcomes: list[tuple[str, Any]] = [("missing", None)] * len(who)

    def run(index: int, person: Actor) -> None:
        session = factory(app)()
        try:
            barrier.wait(timeout=10)
            result = work(session, person)
            session.commit()
            outcomes[index] = ("ok", result)
        except Exception as exc:
            session.rollback()
            outcomes[index] = ("error", exc)
        finally:
            session.close()

    threads = [threading.Thread(target=run, args=(i, p)) for i, p in enumerate(who)]
    for t in threads:
        t.start()
    if gate:
        barrier.wait(timeout=10)
        gate()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), "a thread hung (deadlock?)"
    return outcomes


@contextmanager
def holding_audit_head(app: Flask) -> Iterator[Callable[[], None]]:
    """Hold the audit chain-head lock from another connection, so both threads get past
    their first reads and queue on it; the returned callable waits for that and releases."""
    conn = app.extensions["lotsen_engine"].connect()
    tx = conn.begin()
    conn.execute(text("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE"))

    def release() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            # pg_stat_activity is snapshotted once per transaction: refresh it each time.
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query ILIKE '%audit_head%'"
                )
            ).scalar_one()
            if waiting >= 2:
                break
            time.sleep(0.01)
        else:  # pragma: no cover - diagnostics
            rows = conn.execute(
                text(
                    "SELECT state, wait_event_type, wait_event, left(query, 120) "
                    "FROM pg_stat_activity WHERE datname = current_database()"
                )
            ).all()
            raise AssertionError(f"the threads never queued on the audit head: {rows}")
        tx.rollback()

    try:
        yield release
    finally:
        if tx.is_active:
            tx.rollback()
        conn.close()


def _split(outcomes: list[tuple[str, Any]]) -> tuple[list[Any], list[Exception]]:
    wins = [r for kind, r in outcomes if kind == "ok"]
    errors = [e for kind, e in outcomes if kind == "error"]
    unexpected = [e for e in errors if not isinstance(e, LotsenError)]
    assert not unexpected, f"unexpected errors: {unexpected!r}"
    return wins, errors


def _count(session: Session, action: str, object_id: str | int) -> int:
    return int(
        session.execute(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == action, AuditEntry.object_id == str(object_id))
        ).scalar_one()
    )


def _assert_one_completion(
    app: Flask, case_id: int, task_id: str, outcomes: list[Any], names: dict[int | None, str]
) -> None:
    wins, errors = _split(outcomes)
    assert len(wins) == 1, outcomes
    assert len(errors) == 1 and isinstance(errors[0], Conflict), outcomes
    with factory(app)() as s:
        assert _count(s, "task:completed", task_id) == 1
        assert [t.bpmn_id for t in open_tasks(s, case_id)] == ["task_hold_conversation"]
        row = s.get(OpenTask, task_id)
        assert row is not None and row.status == "done"
        assert row.completed_by_id is not None
        assert errors[0].details.get("completed_by") in (None, names[row.completed_by_id])
        assert audit.verify_chain(s) is None


def _complete_race(app: Flask, people: dict[str, Actor], rounds: int, gated: bool) -> None:
    who = [people["handlaggare"], people["handlaggare2"]]
    names = {
        people["handlaggare"].user_id: "Hanna Handläggare",
        people["handlaggare2"].user_id: "Handlaggare2",
    }
    for _ in range(rounds):
        case_id = start_committed(app)
        with factory(app)() as s:
            task_id = open_task(s, case_id, "task_screen_acute").id

        def work(session: Session, person: Actor, task_id: str = task_id) -> Any:
            return actions.complete_task(session, person, task_id=task_id, data=SCREENING)

        if gated:
            with holding_audit_head(app) as release:
                outcomes = race(app, who, work, gate=release)
        else:
            outcomes = race(app, who, work)
        _assert_one_completion(app, case_id, task_id, outcomes, names)


def test_concurrent_completion_postgres(pg_app: Flask, people: dict[str, Actor]) -> None:
    _complete_race(pg_app, people, PG_ROUNDS, gated=False)


def test_concurrent_completion_postgres_both_past_first_read(
    pg_app: Flask, people: dict[str, Actor]
) -> None:
    """Both threads have loaded the open task before either commits (forced interleaving)."""
    _complete_race(pg_app, people, 3, gated=True)


def test_concurrent_completion_sqlite(sqlite_app: Flask, people: dict[str, Actor]) -> None:
    _complete_race(sqlite_app, people, SQLITE_ROUNDS, gated=False)


def _decide_race(app: Flask, people: dict[str, Actor], rounds: int, gated: bool) -> None:
    who = [people["arbetsledare"], people["arbetsledare2"]]
    for _ in range(rounds):
        case_id = start_committed(app)
        run_to_assessment(app, case_id)
        decision_id = propose_assessment(app, case_id)

        def work(session: Session, person: Actor, decision_id: int = decision_id) -> Any:
            return actions.decide(
                session, person, decision_id=decision_id, approve=True, comment=None
            ).id

        if gated:
            with holding_audit_head(app) as release:
                outcomes = race(app, who, work, gate=release)
        else:
            outcomes = race(app, who, work)
        wins, errors = _split(outcomes)
        assert len(wins) == 1 and len(errors) == 1, outcomes
        assert isinstance(errors[0], Conflict)
        with factory(app)() as s:
            assert _count(s, "decision:approved", decision_id) == 1
            assert newest_decision(s, case_id, "D-A6").status == "approved"
            assert [t.bpmn_id for t in open_tasks(s, case_id)] == ["task_propose_police_report"]
            assert audit.verify_chain(s) is None


def test_concurrent_approval_postgres(pg_app: Flask, people: dict[str, Actor]) -> None:
    _decide_race(pg_app, people, 5, gated=False)
    _decide_race(pg_app, people, 2, gated=True)


def test_concurrent_approval_sqlite(sqlite_app: Flask, people: dict[str, Actor]) -> None:
    _decide_race(sqlite_app, people, 2, gated=False)


def _claim_race(app: Flask, people: dict[str, Actor], gated: bool) -> None:
    who = [people["handlaggare"], people["handlaggare2"]]
    case_id = start_committed(app)
    with factory(app)() as s:
        task_id = open_task(s, case_id, "task_screen_acute").id

    def work(session: Session, person: Actor) -> Any:
        return actions.claim_task(session, person, task_id=task_id).assignee_id

    if gated:
        with holding_audit_head(app) as release:
            outcomes = race(app, who, work, gate=release)
    else:
        outcomes = race(app, who, work)
    wins, _ = _split(outcomes)
    assert len(wins) == 1, f"both claimed the same task: {outcomes}"
    with factory(app)() as s:
        assert open_task(s, case_id, "task_screen_acute").assignee_id == wins[0]
        assert _count(s, "task:claimed", task_id) == 1


def test_concurrent_claim_postgres(pg_app: Flask, people: dict[str, Actor]) -> None:
    _claim_race(pg_app, people, gated=True)


def test_concurrent_claim_sqlite(sqlite_app: Flask, people: dict[str, Actor]) -> None:
    _claim_race(sqlite_app, people, gated=False)
