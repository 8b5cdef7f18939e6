"""The timer worker (engine/timers.py): time travel through a deadline, exactly-once firing
with several workers, leases, back-off, the CLI. SQLite, and PostgreSQL when configured."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from engine import actions, audit, timers
from engine.audit import SYSTEM
from engine.db import clock, normalize_url, unit_of_work
from engine.models import AuditEntry, OpenTask, ProcessInstance
from engine.processes import ProcedureFiles, publish
from tests.conftest import actor, make_app, unit_id

NS = (
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"'
)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
ESCALATE = timedelta(days=10)
EXPIRE = timedelta(days=30)


def _props(**props: str) -> str:
    items = "".join(f'<spiffworkflow:property name="{k}" value="{v}" />' for k, v in props.items())
    return (
        "<bpmn:extensionElements><spiffworkflow:properties>"
        f"{items}</spiffworkflow:properties></bpmn:extensionElements>"
    )


def _timer(event_id: str, duration: str, *, interrupting: bool, outgoing: str) -> str:
    cancel = "" if interrupting else ' cancelActivity="false"'
    return (
        f'<bpmn:boundaryEvent id="{event_id}" name="{event_id}" attachedToRef="task_review_case"'
        f"{cancel}><bpmn:outgoing>{outgoing}</bpmn:outgoing><bpmn:timerEventDefinition>"
        f'<bpmn:timeDuration>"{duration}"</bpmn:timeDuration></bpmn:timerEventDefinition>'
        "</bpmn:boundaryEvent>"
    )


DEADLINE_BPMN = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {NS} id="d_timer" targetNamespace="http://lotsen.test">
  <bpmn:process id="mini_deadline" name="Mini deadline" isExecutable="true">
    <bpmn:laneSet id="ls">
      <bpmn:lane id="l_cw" name="caseworker">
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>task_review_case</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>end</bpmn:flowNodeRef>
      </bpmn:lane>
      <bpmn:lane id="l_sup" name="supervisor">
        <bpmn:flowNodeRef>task_review_case_deadline</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>end_escalation</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>task_handle_expiry</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>end_expiry</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start">{_props(formKey="mini_intake")}
      <bpmn:outgoing>f_start</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="task_review_case" name="B3 Utredning">{
    _props(formKey="mini_review", deadline="P10D")
}
      <bpmn:incoming>f_start</bpmn:incoming><bpmn:outgoing>f_done</bpmn:outgoing></bpmn:userTask>
    {_timer("timer_escalate", "P10D", interrupting=False, outgoing="f_escalate")}
    {_timer("timer_expire", "P30D", interrupting=True, outgoing="f_expire")}
    <bpmn:userTask id="task_review_case_deadline" name="Tidsfrist passerad">{
    _props(formKey="deadline_escalation", deadline="P2D")
}
      <bpmn:incoming>f_escalate</bpmn:incoming><bpmn:outgoing>f_esc_end</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:userTask id="task_handle_expiry" name="Frist löpt ut">{
    _props(formKey="deadline_escalation")
}
      <bpmn:incoming>f_expire</bpmn:incoming><bpmn:outgoing>f_exp_end</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f_done</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="end_escalation"><bpmn:incoming>f_esc_end</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="end_expiry"><bpmn:incoming>f_exp_end</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f_start" sourceRef="start" targetRef="task_review_case" />
    <bpmn:sequenceFlow id="f_done" sourceRef="task_review_case" targetRef="end" />
    <bpmn:sequenceFlow id="f_escalate" sourceRef="timer_escalate"
      targetRef="task_review_case_deadline" />
    <bpmn:sequenceFlow id="f_esc_end" sourceRef="task_review_case_deadline"
      targetRef="end_escalation" />
    <bpmn:sequenceFlow id="f_expire" sourceRef="timer_expire" targetRef="task_handle_expiry" />
    <bpmn:sequenceFlow id="f_exp_end" sourceRef="task_handle_expiry" targetRef="end_expiry" />
  </bpmn:process>
</bpmn:definitions>
"""


def _text(key: str) -> dict[str, Any]:
    return {"type": "textfield", "key": key, "label": {"sv": key, "en": key}}


FORMS = {
    "mini_intake": {"id": "mini_intake", "components": [_text("note")]},
    "mini_review": {"id": "mini_review", "components": [_text("finding")]},
    "deadline_escalation": {"id": "deadline_escalation", "components": [_text("comment")]},
}


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
def frozen() -> Iterator[None]:
    """The clock stands at T0 (a test moves it); it is unfrozen afterwards."""
    clock.frozen = T0
    yield
    clock.frozen = None


@pytest.fixture
def sessions(app: Flask, frozen: None) -> sessionmaker[Session]:
    """The app's session factory, with the mini deadline procedure published."""
    factory: sessionmaker[Session] = app.extensions["lotsen_db"]
    with unit_of_work(factory) as s:
        publish(s, SYSTEM, ProcedureFiles("mini_deadline", DEADLINE_BPMN.encode(), FORMS))
    return factory


def _start(factory: sessionmaker[Session], count: int = 1) -> list[int]:
    """Start ``count`` mini_deadline cases at the current clock; return their case ids."""
    with unit_of_work(factory) as s:
        who, unit = actor(s, "handlaggare"), unit_id(s, "vuxenenheten")
        return [
            actions.start_case(
                s, who, procedure="mini_deadline", unit_id=unit, intake={"note": "x"}
            ).id
            for _ in range(count)
        ]


def _open(s: Session, case_id: int) -> dict[str, OpenTask]:
    rows = s.execute(
        select(OpenTask).where(OpenTask.case_id == case_id, OpenTask.status == "open")
    ).scalars()
    return {r.bpmn_id: r for r in rows}


def _instance(s: Session, case_id: int) -> ProcessInstance:
    return s.execute(
        select(ProcessInstance)
        .where(ProcessInstance.case_id == case_id)
        .execution_options(populate_existing=True)
    ).scalar_one()


def _fired_entries(s: Session, case_id: int | None = None) -> int:
    query = select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "timer:fired")
    if case_id is not None:
        query = query.where(AuditEntry.case_id == case_id)
    return int(s.execute(query).scalar_one())


def _escalations(s: Session) -> dict[int, int]:
    rows = s.execute(
        select(OpenTask.case_id, func.count())
        .where(OpenTask.bpmn_id == "task_review_case_deadline")
        .group_by(OpenTask.case_id)
    ).all()
    return {int(case_id): int(n) for case_id, n in rows}


def _pass(factory: sessionmaker[Session], worker: str = "test") -> timers.PassStats:
    return timers.run_until_drained(factory, worker)


# ---------------------------------------------------------------------------- time travel


def test_the_clock_hook_moves_spiffworkflow_with_engine_clock(
    sessions: sessionmaker[Session],
) -> None:
    from SpiffWorkflow.bpmn.specs.event_definitions import timer as spiff_timer

    assert spiff_timer.datetime.now(UTC) == T0
    assert isinstance(datetime.now(UTC), spiff_timer.datetime)  # plain datetimes still pass
    with timers.spiff_now(T0 + EXPIRE):
        assert spiff_timer.datetime.now(UTC) == T0 + EXPIRE
    assert spiff_timer.datetime.now(UTC) == T0
    clock.frozen = None
    assert abs(spiff_timer.datetime.now(UTC) - datetime.now(UTC)) < timedelta(seconds=5)


def test_deadline_before_at_escalation_and_after_expiry(sessions: sessionmaker[Session]) -> None:
    (case_id,) = _start(sessions)
    with sessions() as s:
        instance = _instance(s, case_id)
        assert instance.next_timer_due_at == T0 + ESCALATE  # Spiff's due time = our clock
        review = _open(s, case_id)["task_review_case"]
        assert review.due_at == T0 + ESCALATE and review.role == "caseworker"

    # Before: nothing is due, nothing fires.
    clock.frozen = T0 + ESCALATE - timedelta(seconds=1)
    assert _pass(sessions).claimed == 0
    # At the very due instant SpiffWorkflow (due < now) does not fire yet; neither do we.
    clock.frozen = T0 + ESCALATE
    assert _pass(sessions).claimed == 0
    with sessions() as s:
        assert set(_open(s, case_id)) == {"task_review_case"}

    # Escalation: one second later the supervisor task appears, once, with its due date.
    clock.frozen = T0 + ESCALATE + timedelta(seconds=1)
    stats = _pass(sessions)
    assert (stats.fired, stats.claimed, stats.failed) == (1, 1, 0)
    assert _pass(sessions).claimed == 0  # the same due time never fires twice
    with sessions() as s:
        tasks = _open(s, case_id)
        assert set(tasks) == {"task_review_case", "task_review_case_deadline"}
        escalation = tasks["task_review_case_deadline"]
        assert escalation.role == "supervisor"
        assert escalation.due_at == clock.frozen + timedelta(days=2)
        assert _instance(s, case_id).next_timer_due_at == T0 + EXPIRE
        entry = s.execute(select(AuditEntry).where(AuditEntry.action == "timer:fired")).scalar_one()
        assert entry.case_id == case_id and entry.actor_id is None
        assert entry.actor_name == "system"
        assert entry.details["timers"][0]["name"] == "timer_escalate"
        assert entry.details["new_tasks"] == ["task_review_case_deadline"]

    # After expiry: the interrupting timer cancels the original task.
    clock.frozen = T0 + EXPIRE + timedelta(minutes=1)
    assert _pass(sessions).fired == 1
    with sessions() as s:
        assert set(_open(s, case_id)) == {"task_review_case_deadline", "task_handle_expiry"}
        cancelled = s.execute(
            select(OpenTask).where(
                OpenTask.case_id == case_id, OpenTask.bpmn_id == "task_review_case"
            )
        ).scalar_one()
        assert cancelled.status == "cancelled"
        instance = _instance(s, case_id)
        assert instance.next_timer_due_at is None and instance.status == "running"
        assert _fired_entries(s, case_id) == 2
        assert audit.verify_chain(s) is None


def test_a_task_done_in_time_never_escalates(sessions: sessionmaker[Session]) -> None:
    (case_id,) = _start(sessions)
    clock.frozen = T0 + timedelta(days=3)
    with unit_of_work(sessions) as s:
        who = actor(s, "handlaggare")
        task = _open(s, case_id)["task_review_case"]
        actions.claim_task(s, who, task_id=task.id)
        actions.complete_task(s, who, task_id=task.id, data={"finding": "ok"})
    with sessions() as s:
        instance = _instance(s, case_id)
        assert instance.status == "completed" and instance.next_timer_due_at is None
    clock.frozen = T0 + EXPIRE * 2
    assert _pass(sessions).claimed == 0
    with sessions() as s:
        assert _fired_entries(s) == 0 and _open(s, case_id) == {}


def test_one_pass_catches_up_on_both_overdue_timers(sessions: sessionmaker[Session]) -> None:
    """A worker that was down for the whole period fires escalation and expiry together."""
    (case_id,) = _start(sessions)
    clock.frozen = T0 + EXPIRE + timedelta(days=1)
    stats = _pass(sessions)
    assert stats.fired == 1
    with sessions() as s:
        assert set(_open(s, case_id)) == {"task_review_case_deadline", "task_handle_expiry"}
        entry = s.execute(select(AuditEntry).where(AuditEntry.action == "timer:fired")).scalar_one()
        assert {t["name"] for t in entry.details["timers"]} == {"timer_escalate", "timer_expire"}


def test_an_explicit_now_is_used_by_spiffworkflow_too(sessions: sessionmaker[Session]) -> None:
    (case_id,) = _start(sessions)  # the clock stays at T0 throughout
    fired = timers.fire_due(sessions, "explicit", now=T0 + ESCALATE + timedelta(seconds=1))
    assert fired == 1
    with sessions() as s:
        assert "task_review_case_deadline" in _open(s, case_id)


# ---------------------------------------------------------------------------- exactly once


def _run_workers(factory: sessionmaker[Session], count: int) -> list[timers.PassStats]:
    barrier = threading.Barrier(count)
    results: list[timers.PassStats] = []
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            barrier.wait()
            results.append(timers.run_until_drained(factory, f"worker-{n}", batch=10))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return results


def test_two_workers_fire_each_due_instance_exactly_once(
    sessions: sessionmaker[Session], database_url: str
) -> None:
    cases = _start(sessions, 50)
    clock.frozen = T0 + ESCALATE + timedelta(seconds=5)
    results = _run_workers(sessions, 2)
    assert sum(r.fired for r in results) == 50
    assert sum(r.failed for r in results) == 0
    with sessions() as s:
        assert _fired_entries(s) == 50
        assert _escalations(s) == dict.fromkeys(cases, 1)
        assert audit.verify_chain(s) is None
    assert _pass(sessions).claimed == 0


def test_a_live_claim_is_skipped_and_a_stale_one_is_taken_over(
    sessions: sessionmaker[Session],
) -> None:
    live, stale, free = _start(sessions, 3)
    now = T0 + ESCALATE + timedelta(seconds=5)
    clock.frozen = now
    with unit_of_work(sessions) as s:
        for case_id, until in ((live, now + timedelta(minutes=1)), (stale, now - timedelta(1))):
            s.execute(
                update(ProcessInstance)
                .where(ProcessInstance.case_id == case_id)
                .values(timer_claimed_by="dead-worker", timer_claimed_until=until)
            )
    stats = _pass(sessions)
    assert stats.fired == 2
    with sessions() as s:
        assert _escalations(s) == {stale: 1, free: 1}
        assert _instance(s, stale).timer_claimed_by is None  # the takeover cleared it
    clock.frozen = now + timedelta(minutes=2)  # the live claim's lease runs out
    assert _pass(sessions).fired == 1
    with sessions() as s:
        assert _escalations(s) == {live: 1, stale: 1, free: 1}
        assert _fired_entries(s) == 3


def test_a_row_locked_by_another_worker_is_skipped_not_waited_for(
    sessions: sessionmaker[Session], database_url: str
) -> None:
    """PostgreSQL: FOR UPDATE SKIP LOCKED. A worker killed while holding a claim loses its
    locks with its connection; its instance then fires, once."""
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite has no row locks (writers are serialised by BEGIN IMMEDIATE)")
    held, other = _start(sessions, 2)
    clock.frozen = T0 + ESCALATE + timedelta(seconds=5)
    with sessions() as s:
        held_id = _instance(s, held).id
    crashed = create_engine(normalize_url(database_url.replace("postgresql+psycopg", "postgresql")))
    conn = crashed.connect()
    conn.begin()
    conn.execute(
        text("SELECT id FROM process_instances WHERE id = :id FOR UPDATE"), {"id": held_id}
    )
    started = time.perf_counter()
    stats = _pass(sessions)
    assert time.perf_counter() - started < 5, "the worker waited for the locked row"
    assert stats.fired == 1
    with sessions() as s:
        assert _escalations(s) == {other: 1}
    conn.invalidate()  # the "killed" worker: its connection and locks are gone
    conn.close()
    crashed.dispose()
    # the server ends the dead backend (and frees its row lock) a moment after the socket
    # closes; until then SKIP LOCKED rightly passes the row by
    deadline = time.monotonic() + 10
    while (fired := _pass(sessions).fired) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fired == 1
    with sessions() as s:
        assert _escalations(s) == {held: 1, other: 1}


def test_a_failing_firing_backs_off_and_is_retried(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken, fine = _start(sessions, 2)
    now = T0 + ESCALATE + timedelta(seconds=5)
    clock.frozen = now
    with sessions() as s:
        broken_id = _instance(s, broken).id
    real = actions.runtime.fire_due_timers
    target_state: list[str] = []
    with sessions() as s:
        target_state.append(_instance(s, broken).state)

    def flaky(wf: Any) -> None:
        if actions.runtime.dump(wf) == target_state[0]:
            raise RuntimeError("boom")
        real(wf)

    monkeypatch.setattr(actions.runtime, "fire_due_timers", flaky)
    stats = _pass(sessions)
    assert (stats.fired, stats.failed, stats.failed_ids) == (1, 1, [broken_id])
    with sessions() as s:
        instance = _instance(s, broken)
        assert instance.timer_claimed_until == now + timers.RETRY_AFTER
        assert _escalations(s) == {fine: 1}
        failed = s.execute(
            select(AuditEntry).where(AuditEntry.action == "timer:failed")
        ).scalar_one()
        assert failed.outcome == "error" and failed.details["error"] == "RuntimeError"
    monkeypatch.setattr(actions.runtime, "fire_due_timers", real)
    assert _pass(sessions).claimed == 0  # backing off, no hot loop
    clock.frozen = now + timers.RETRY_AFTER + timedelta(seconds=1)
    assert _pass(sessions).fired == 1
    with sessions() as s:
        assert _escalations(s) == {broken: 1, fine: 1}
        assert audit.verify_chain(s) is None


def test_a_stale_due_column_is_corrected_without_firing(sessions: sessionmaker[Session]) -> None:
    (case_id,) = _start(sessions)
    with unit_of_work(sessions) as s:
        version = _instance(s, case_id).version
        s.execute(
            update(ProcessInstance)
            .where(ProcessInstance.case_id == case_id)
            .values(next_timer_due_at=T0 - timedelta(days=1))
        )
    stats = _pass(sessions)
    assert (stats.claimed, stats.fired) == (1, 0)
    with sessions() as s:
        instance = _instance(s, case_id)
        assert instance.next_timer_due_at == T0 + ESCALATE
        assert instance.version == version  # no version bump: open forms stay valid
        assert _fired_entries(s) == 0


# ---------------------------------------------------------------------------- CLI


def test_run_timers_once_fires_and_reports(app: Flask, sessions: sessionmaker[Session]) -> None:
    _start(sessions, 3)
    clock.frozen = T0 + ESCALATE + timedelta(seconds=5)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["lotsen", "run-timers", "--once"])
    assert result.exit_code == 0, result.output
    assert "timers fired: 3" in result.output
    again = runner.invoke(args=["lotsen", "run-timers", "--once"])
    assert "timers fired: 0" in again.output


def test_serve_loops_until_stopped(sessions: sessionmaker[Session]) -> None:
    _start(sessions, 2)
    clock.frozen = T0 + ESCALATE + timedelta(seconds=5)
    stop = threading.Event()
    assert timers.serve(sessions, stop, interval=0.1, max_passes=3) == 2
    stop.set()
    assert timers.serve(sessions, stop, interval=0.1) == 0


def test_worker_process_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """The real ``flask --app wsgi lotsen worker`` process on a SQLite database."""
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    make_app(url, tmp_path).extensions["lotsen_engine"].dispose()
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "LOTSEN_DATABASE_URL": url,
        "LOTSEN_ENV": "test",
        "LOTSEN_INSTANCE_DIR": str(tmp_path),
    }
    flask = Path(sys.executable).with_name("flask")
    proc = subprocess.Popen(
        [str(flask), "--app", "wsgi", "lotsen", "worker", "--interval", "0.2"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until the loop runs (handlers installed)
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "timer worker" in line and "started" in line:
                break
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:  # pragma: no cover
            proc.kill()
    out = "".join(lines) + rest
    assert proc.returncode == 0, out
    assert "timer worker stopped: 0 fired" in out
    assert "signal SIGTERM" in out


# ---------------------------------------------------------------------------- scenario runner


def test_the_scenario_advance_step_moves_both_clocks_and_fires(app: Flask) -> None:
    """``{"advance": "P11D"}`` as the scenario runner performs it (engine_testkit)."""
    from engine_testkit import ScenarioClock, iso_timedelta

    factory: sessionmaker[Session] = app.extensions["lotsen_db"]
    with unit_of_work(factory) as s:
        publish(s, SYSTEM, ProcedureFiles("mini_deadline", DEADLINE_BPMN.encode(), FORMS))
    assert clock.frozen is None
    (case_id,) = _start(factory)  # real time: the runner leaves the clock alone until advance
    time_travel = ScenarioClock()
    try:
        assert time_travel.advance(app, "P9D").claimed == 0
        stats = time_travel.advance(app, "P2D")
        assert (stats.fired, stats.failed) == (1, 0)
        first = clock.now()
        time.sleep(0.01)
        time_travel.tick()
        assert clock.now() > first  # later steps keep increasing timestamps
        with factory() as s:
            assert set(_open(s, case_id)) == {"task_review_case", "task_review_case_deadline"}
    finally:
        time_travel.reset()
    assert clock.frozen is None
    leap = datetime(2028, 1, 31, tzinfo=UTC)
    assert iso_timedelta("P1M", leap) == timedelta(days=31)  # months as SpiffWorkflow counts them
    assert iso_timedelta("PT4H", leap) == timedelta(hours=4)
