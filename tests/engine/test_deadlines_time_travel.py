"""Time travel through every statutory and local deadline of every procedure.

For each deadline (a user task's ``deadline`` property) and each escalation timer (a timer
boundary event) in ``bpmn/*/*.bpmn``: a real scenario is run on a frozen clock until the
task is open, then the clock is moved and the timer worker (engine.timers) runs:

* before: nothing escalated, the task is not overdue;
* at escalation: the escalation step (supervisor, coordinator, ...) is open;
* after expiry: the task shows as overdue on the case page and in its worker's inbox (or,
  for an interrupting timer, the expiry step took over).

``test_table_covers_every_bpmn_deadline`` fails when a diagram gains a deadline or timer
that the table below does not list, so no deadline can go untested.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from lxml import etree
from sqlalchemy import select

from engine import actions, queries, timers
from engine.db import clock, unit_of_work
from engine.models import Case, OpenTask
from tests.conftest import actor
from tests.engine.engine_testkit import (
    BPMN_DIR,
    app_on,
    approver_for,
    complete_committed,
    factory,
    iso_timedelta,
    load_scenario,
    newest_decision,
    start,
    user_for,
)

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # Monday 09:00 in Stockholm
NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "s": "http://spiffworkflow.org/bpmn/schema/1.0/core",
}


@dataclass(frozen=True)
class Timer:
    """An escalation timer on the task: its id, ISO duration and the step it opens."""

    id: str
    duration: str
    opens: str
    role: str
    interrupting: bool = False


@dataclass(frozen=True)
class Deadline:
    """One row: a task with a deadline and/or escalation timers, and how to reach it."""

    procedure: str
    task: str
    scenario: str
    timers: tuple[Timer, ...] = ()
    has_deadline: bool = True
    #: reach this task first, then let ``then_advance`` pass (a task opened by a timer)
    reach: str | None = None
    then_advance: str | None = None

    @property
    def id(self) -> str:
        return f"{self.procedure}:{self.task}"


CS, HN, ID, VS = "child_safeguarding", "housing_notification", "identification", "victim_support"
SUP = "supervisor"

DEADLINES: tuple[Deadline, ...] = (
    # --- child safeguarding (domain.md §4.4: same day, 14 days, 4 months, 1 week, 4 weeks)
    Deadline(
        CS,
        "task_assess_immediate_protection",
        "01",
        (Timer("timer_protection_deadline", "PT4H", "task_review_protection_deadline", SUP),),
    ),
    Deadline(CS, "task_propose_immediate_measure", "02"),
    Deadline(CS, "task_decide_lvu6", "03"),
    Deadline(
        CS,
        "task_refer_lvu_to_court",
        "03",
        (
            Timer(
                "timer_court_referral_deadline", "P5D", "task_review_court_referral_deadline", SUP
            ),
        ),
    ),
    Deadline(
        CS,
        "task_submit_lvu_care_application",
        "03",
        (
            Timer(
                "timer_care_application_deadline",
                "P21D",
                "task_review_care_application_deadline",
                SUP,
            ),
        ),
    ),
    Deadline(CS, "task_check_child_situation", "01"),
    Deadline(CS, "task_record_consultation", "01"),
    Deadline(CS, "task_propose_police_report", "01"),
    Deadline(
        CS,
        "task_document_child_view",
        "01",
        (Timer("timer_preliminary_deadline", "P10D", "task_review_preliminary_deadline", SUP),),
    ),
    Deadline(CS, "task_propose_preliminary_assessment", "01"),
    Deadline(CS, "task_propose_preliminary_assessment_violence", "02"),
    Deadline(CS, "task_give_reporter_feedback", "02"),
    Deadline(
        CS,
        "task_investigate_child",
        "02",
        (Timer("timer_investigation_deadline", "P3M", "task_review_investigation_deadline", SUP),),
    ),
    Deadline(CS, "task_notify_guardians", "02"),
    Deadline(CS, "task_record_notification_withheld", "03"),
    Deadline(
        CS,
        "task_continue_investigation",
        "08",
        (Timer("timer_extension_deadline", "P6W", "task_review_extension_deadline", SUP),),
    ),
    Deadline(CS, "task_plan_follow_up", "02"),
    # --- housing notification (domain.md §7: C3 within 2 working days, 5-day ack, 30 days)
    Deadline(HN, "task_triage_persons", "01"),
    Deadline(
        HN,
        "task_propose_route_decision",
        "01",
        (
            Timer(
                "timer_route_decision_deadline", "P2D", "task_review_route_decision_deadline", SUP
            ),
        ),
    ),
    Deadline(HN, "task_approve_route_decision", "01"),
    Deadline(HN, "task_send_police_tip", "01"),
    Deadline(HN, "task_draft_housing_letter", "01"),
    Deadline(HN, "task_sign_housing_letter", "01"),
    Deadline(
        HN,
        "task_acknowledge_notification",
        "01",
        (
            Timer(
                "timer_acknowledgement_overdue",
                "P7D",
                "task_remind_housing_acknowledgement",
                "coordinator",
            ),
        ),
    ),
    Deadline(HN, "task_remind_housing_acknowledgement", "03"),
    Deadline(
        HN,
        "task_return_housing_status",
        "01",
        (Timer("timer_status_followup", "P30D", "task_request_housing_status", "coordinator"),),
        has_deadline=False,
    ),
    Deadline(HN, "task_request_housing_status", "01"),
    Deadline(
        HN,
        "task_return_housing_status_2",
        "05",
        (Timer("timer_status_followup_2", "P30D", "task_request_housing_status_2", "coordinator"),),
        has_deadline=False,
    ),
    Deadline(HN, "task_request_housing_status_2", "05"),
    Deadline(
        HN,
        "task_return_housing_status_3",
        "05",
        (Timer("timer_status_followup_3", "P30D", "task_request_housing_status_3", "coordinator"),),
        has_deadline=False,
    ),
    Deadline(
        HN,
        "task_request_housing_status_3",
        "05",
        reach="task_return_housing_status_3",
        then_advance="P30D",
    ),
    Deadline(HN, "task_check_victim_protection", "01"),
    Deadline(HN, "task_offer_housing_support", "08"),
    Deadline(HN, "task_close_housing_notification", "01"),
    # --- identification (domain.md §5: 1 working day steps, decision within 5 working days)
    Deadline(ID, "task_assess_indicators", "01"),
    Deadline(ID, "task_request_consultation", "01"),
    Deadline(ID, "task_record_consultation", "01"),
    Deadline(ID, "task_propose_assessment", "01"),
    Deadline(ID, "task_propose_police_report", "01"),
    Deadline(ID, "task_propose_further_handling", "01"),
    Deadline(ID, "task_close_identification", "01"),
    # --- victim support (domain.md §8, §4.4: first hours, reflection period 30 days, reviews)
    Deadline(VS, "task_open_support_case", "01"),
    Deadline(
        VS,
        "task_propose_acute_protection",
        "02",
        (Timer("timer_acute_protection_8h", "PT8H", "task_review_acute_protection_deadline", SUP),),
    ),
    Deadline(
        VS,
        "task_propose_acute_protection_dv",
        "01",
        (
            Timer(
                "timer_acute_protection_dv_8h", "PT8H", "task_review_acute_protection_deadline", SUP
            ),
        ),
    ),
    Deadline(VS, "task_consult_regional_coordinator", "01"),
    Deadline(VS, "task_plan_safety", "01"),
    Deadline(VS, "task_inform_rights", "01"),
    Deadline(VS, "task_propose_reflection_period", "01"),
    Deadline(VS, "task_investigate_needs", "01"),
    Deadline(
        VS,
        "task_record_migration_decision",
        "01",
        (
            Timer(
                "timer_migration_decision_7d", "P7D", "task_review_migration_decision_deadline", SUP
            ),
        ),
    ),
    Deadline(VS, "task_propose_intervention", "01"),
    Deadline(
        VS,
        "task_follow_reflection_period",
        "01",
        (
            Timer("timer_reflection_day20", "P20D", "task_review_reflection_period_deadline", SUP),
            Timer(
                "timer_reflection_day30",
                "P30D",
                "task_record_reflection_expiry",
                "caseworker",
                interrupting=True,
            ),
        ),
    ),
    Deadline(VS, "task_record_reflection_expiry", "01"),
    Deadline(VS, "task_coordinate_long_term", "01"),
    Deadline(
        VS,
        "task_plan_long_term_support",
        "01",
        (Timer("timer_plan_review", "P3M", "task_review_implementation_plan", "caseworker"),),
        has_deadline=False,
    ),
    Deadline(VS, "task_review_implementation_plan", "06"),
    Deadline(VS, "task_propose_intervention_review", "06"),
    Deadline(VS, "task_apply_return_programme", "01"),
)


# ------------------------------------------------------------------------ the bpmn side


def _bpmn_deadlines() -> tuple[set[tuple[str, str]], set[tuple[str, str, str]]]:
    """(procedure, task) with a deadline property; (procedure, timer id, host task)."""
    tasks: set[tuple[str, str]] = set()
    boundary: set[tuple[str, str, str]] = set()
    for path in sorted(BPMN_DIR.glob("*/*.bpmn")):
        procedure = path.parent.name
        tree = etree.parse(str(path))
        for task in tree.iterfind(".//bpmn:userTask", NS):
            names = {p.get("name") for p in task.iterfind(".//s:property", NS)}
            if "deadline" in names:
                tasks.add((procedure, str(task.get("id"))))
        for event in tree.iterfind(".//bpmn:boundaryEvent", NS):
            if event.find("bpmn:timerEventDefinition", NS) is not None:
                boundary.add((procedure, str(event.get("id")), str(event.get("attachedToRef"))))
    return tasks, boundary


def test_table_covers_every_bpmn_deadline() -> None:
    tasks, boundary = _bpmn_deadlines()
    assert tasks, "no deadline found: the parser is broken"
    listed_tasks = {(d.procedure, d.task) for d in DEADLINES if d.has_deadline}
    listed_timers = {(d.procedure, t.id, d.task) for d in DEADLINES for t in d.timers}
    assert tasks - listed_tasks == set(), "deadlines missing from the time-travel table"
    assert listed_tasks - tasks == set(), "the table lists deadlines the diagrams do not have"
    assert boundary - listed_timers == set(), "escalation timers missing from the table"
    assert listed_timers - boundary == set(), "the table lists timers the diagrams do not have"


# ------------------------------------------------------------------------- time travel


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    clock.frozen = T0
    try:
        yield from app_on(database_url, tmp_path)
    finally:
        clock.frozen = None


def _run_timers(app: Flask) -> None:
    timers.run_until_drained(factory(app), "time-travel")


def _open(app: Flask, case_id: int) -> dict[str, OpenTask]:
    with unit_of_work(factory(app)) as s:
        rows = s.execute(
            select(OpenTask).where(OpenTask.case_id == case_id, OpenTask.status == "open")
        ).scalars()
        found = {r.bpmn_id: r for r in rows}
        s.expunge_all()
        return found


def _step(app: Flask, case_id: int, step: dict[str, object]) -> None:
    assert clock.frozen is not None
    clock.frozen += timedelta(minutes=1)
    if "advance" in step:
        clock.frozen += iso_timedelta(str(step["advance"]), clock.frozen)
        _run_timers(app)
    elif "complete" in step:
        data = step.get("data") or {}
        assert isinstance(data, dict)
        complete_committed(app, case_id, str(step["complete"]), data)
    else:
        approve = "approve" in step
        with unit_of_work(factory(app)) as s:
            decision = newest_decision(
                s, case_id, str(step["approve"] if approve else step["return"]), status="proposed"
            )
            actions.decide(
                s,
                approver_for(s, decision),
                decision_id=decision.id,
                approve=approve,
                comment=step.get("comment"),  # type: ignore[arg-type]
            )


def _reach(app: Flask, row: Deadline) -> tuple[int, OpenTask]:
    """Run the row's scenario on the frozen clock until its task is open."""
    (path,) = sorted((BPMN_DIR / row.procedure / "scenarios").glob(f"{row.scenario}_*.json"))
    scenario = load_scenario(path)
    with unit_of_work(factory(app)) as s:
        case_id = start(s, actor(s, "handlaggare"), scenario["intake"], procedure=row.procedure).id
    target = row.reach or row.task
    steps = list(scenario["steps"])
    while target not in _open(app, case_id):
        assert steps, f"{path.name} never opens {target}"
        _step(app, case_id, steps.pop(0))
    if row.then_advance:
        assert clock.frozen is not None
        clock.frozen += iso_timedelta(row.then_advance, clock.frozen) + timedelta(seconds=1)
        _run_timers(app)
    tasks = _open(app, case_id)
    assert row.task in tasks, f"{row.task} is not open after {row.then_advance}"
    return case_id, tasks[row.task]


def _overdue_views(app: Flask, case_id: int, task: OpenTask) -> tuple[bool, bool]:
    """(overdue on the case page, overdue in the inbox of the task's worker)."""
    with unit_of_work(factory(app)) as s:
        case = s.get(Case, case_id)
        assert case is not None
        page = {t.id: t for t in queries.case_view(s, case).open_tasks}
        row = s.get(OpenTask, task.id)
        assert row is not None
        inbox = {t.id: t for t in queries.inbox(s, user_for(s, row))}
        return page[task.id].overdue, inbox[task.id].overdue


@pytest.mark.parametrize("row", DEADLINES, ids=lambda r: r.id)
def test_deadline_before_at_escalation_and_after_expiry(app: Flask, row: Deadline) -> None:
    case_id, task = _reach(app, row)
    opened = task.created_at
    escalations = {t.opens for t in row.timers if not t.interrupting}

    # before: a minute after the task opened nothing is due
    clock.frozen = opened + timedelta(minutes=1)
    _run_timers(app)
    tasks = _open(app, case_id)
    assert row.task in tasks
    assert not (escalations & set(tasks)), "escalated before its time"
    if row.has_deadline:
        assert task.due_at is not None and task.due_at > clock.frozen
        assert _overdue_views(app, case_id, task) == (False, False)

    # at escalation: each timer opens its step (a second after the due instant)
    for timer in sorted(row.timers, key=lambda t: iso_timedelta(t.duration, opened)):
        moment = opened + iso_timedelta(timer.duration, opened) + timedelta(seconds=1)
        clock.frozen = max(clock.frozen, moment)
        _run_timers(app)
        tasks = _open(app, case_id)
        assert timer.opens in tasks, f"{timer.id} did not open {timer.opens}"
        assert tasks[timer.opens].role == timer.role
        if timer.interrupting:
            assert row.task not in tasks, "an interrupting timer leaves its task open"

    # after expiry: shown as overdue where people look for it (an interrupting timer has
    # already replaced the task by its expiry step above)
    if row.has_deadline and not any(t.interrupting for t in row.timers):
        assert task.due_at is not None
        clock.frozen = max(clock.frozen, task.due_at + timedelta(minutes=1))
        _run_timers(app)
        assert row.task in _open(app, case_id), "the task vanished at its deadline"
        assert _overdue_views(app, case_id, task) == (True, True)
