"""Run one scenario file (bpmn/<procedure>/scenarios/*.json) through the engine API.

Each step is one transaction, worked by a user who holds the lane's role (four eyes kept:
a decision is approved by someone other than its proposer). Used by the workspace's
throwaway-database worker and by the scenario tests, so both judge a model the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine import access, actions, timers
from engine.audit import Actor
from engine.db import clock, unit_of_work
from engine.models import Case, CaseLink, Decision, OpenTask, ProcessInstance, Unit, User
from engine.processes import latest_published, model_for, subject_field_map

__all__ = ["ScenarioFailed", "ScenarioOutcome", "actor_of", "run_scenario_data"]

#: Preferred demo-style user for a lane (others are tried when they do not fit).
ROLE_USERS = {
    "caseworker": "handlaggare",
    "supervisor": "arbetsledare",
    "dv_team": "kvinnofrid",
    "coordinator": "samordnare",
    "committee": "ordforande",
    "unit_manager": "enhetschef",
    "housing_contact": "huge",
}
MAX_STEPS = 500


class ScenarioFailed(AssertionError):
    """A scenario step or expectation did not hold; the message says which."""


@dataclass(frozen=True)
class ScenarioOutcome:
    """What a scenario produced (the caller compares it with ``expect``)."""

    case_id: int
    completed: bool
    decisions: dict[str, str]
    visited: list[str]
    linked: list[str]


def actor_of(session: Session, user: User) -> Actor:
    return Actor(
        user_id=user.id,
        username=user.username,
        roles=frozenset((r.role, r.unit_id) for r in user.roles),
    )


def _actors(session: Session) -> list[Actor]:
    users = session.execute(select(User).where(User.active.is_(True)).order_by(User.id)).scalars()
    return [actor_of(session, u) for u in users]


def _user_for(session: Session, task: OpenTask, *, not_user: int | None = None) -> Actor:
    people = _actors(session)
    preferred = ROLE_USERS.get(task.role or "")
    people.sort(key=lambda a: a.username != preferred)
    for who in people:
        if who.user_id == not_user:
            continue
        if access.task_matches(who, task) or (
            task.decision_id is not None and access.can_approve(who, task)
        ):
            return who
    raise ScenarioFailed(f"nobody may work {task.bpmn_id} (role {task.role})")


def _open_task(session: Session, case_id: int, bpmn_id: str) -> OpenTask:
    rows = list(
        session.execute(
            select(OpenTask)
            .where(OpenTask.case_id == case_id, OpenTask.status == "open")
            .order_by(OpenTask.created_at, OpenTask.id)
        ).scalars()
    )
    match = [t for t in rows if t.bpmn_id == bpmn_id]
    if len(match) != 1:
        raise ScenarioFailed(
            f"expected one open task {bpmn_id}, open tasks are {[t.bpmn_id for t in rows]}"
        )
    return match[0]


def _proposed(session: Session, case_id: int, decision_type: str) -> Decision:
    decision = session.execute(
        select(Decision)
        .where(
            Decision.case_id == case_id,
            Decision.decision_type == decision_type,
            Decision.status == "proposed",
        )
        .order_by(Decision.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if decision is None:
        raise ScenarioFailed(f"no proposed {decision_type} decision to approve or return")
    return decision


def _intake_unit(session: Session, caseworker: Actor) -> int:
    for role, unit in sorted(caseworker.roles, key=lambda r: (r[0], r[1] or 0)):
        if role == "caseworker" and unit is not None:
            return unit
    first = session.execute(select(Unit.id).order_by(Unit.id).limit(1)).scalar_one_or_none()
    if first is None:
        raise ScenarioFailed("there is no unit to register the case in")
    return int(first)


def _start(session: Session, procedure: str, intake: Mapping[str, Any]) -> int:
    starters = [a for a in _actors(session) if a.has_role("caseworker")]
    starters.sort(key=lambda a: a.username != "handlaggare")
    if not starters:
        raise ScenarioFailed("nobody may register a case")
    who = starters[0]
    version = latest_published(session, procedure)
    model = model_for(version)
    fields = subject_field_map(version.forms.get(model.start_form_key or "", {}))
    case = actions.start_case(
        session,
        who,
        procedure=procedure,
        unit_id=_intake_unit(session, who),
        intake=dict(intake),
        subject_fields=fields,
    )
    return case.id


def _advance(factory: sessionmaker[Session], offset: timedelta, duration: str) -> timedelta:
    from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

    now = datetime.now(UTC) + offset
    parsed = TimerEventDefinition.parse_iso_duration(duration)
    offset += TimerEventDefinition.get_timedelta_from_start(parsed, now)
    clock.frozen = datetime.now(UTC) + offset
    stats = timers.run_until_drained(factory, "scenario-runner")
    if stats.failed:
        raise ScenarioFailed(f"the timer worker failed after advancing {duration}")
    return offset


def _step(factory: sessionmaker[Session], case_id: int, step: Mapping[str, Any]) -> None:
    with unit_of_work(factory) as s:
        if "complete" in step:
            task = _open_task(s, case_id, str(step["complete"]))
            who = _user_for(s, task)
            if task.assignee_id is None:
                actions.claim_task(s, who, task_id=task.id)
            data = step.get("data", {})
            actions.complete_task(s, who, task_id=task.id, data=dict(data))
            return
        approve = "approve" in step
        decision = _proposed(s, case_id, str(step["approve"] if approve else step["return"]))
        approval = s.execute(
            select(OpenTask).where(OpenTask.decision_id == decision.id, OpenTask.status == "open")
        ).scalar_one_or_none()
        if approval is None:
            raise ScenarioFailed(f"decision {decision.decision_type} has no open approval task")
        actions.decide(
            s,
            _user_for(s, approval, not_user=decision.proposed_by_id),
            decision_id=decision.id,
            approve=approve,
            comment=step.get("comment"),
        )


def _outcome(session: Session, case_id: int) -> ScenarioOutcome:
    instance = session.execute(
        select(ProcessInstance).where(ProcessInstance.case_id == case_id)
    ).scalar_one()
    decisions = {
        d.decision_type: d.outcome
        for d in session.execute(
            select(Decision)
            .where(Decision.case_id == case_id, Decision.status == "approved")
            .order_by(Decision.id)
        ).scalars()
    }
    visited = list(
        session.execute(
            select(OpenTask.bpmn_id)
            .where(OpenTask.case_id == case_id, OpenTask.status == "done")
            .order_by(OpenTask.completed_at, OpenTask.created_at)
        ).scalars()
    )
    linked = sorted(
        session.execute(
            select(Case.procedure)
            .join(CaseLink, CaseLink.to_case_id == Case.id)
            .where(CaseLink.from_case_id == case_id)
        ).scalars()
    )
    return ScenarioOutcome(
        case_id, instance.status == "completed", decisions, visited, [str(p) for p in linked]
    )


def _compare(outcome: ScenarioOutcome, expect: Mapping[str, Any]) -> None:
    if "completed" in expect and outcome.completed != bool(expect["completed"]):
        raise ScenarioFailed(
            f"expected completed={bool(expect['completed'])}, got {outcome.completed}"
        )
    if "decisions" in expect and outcome.decisions != expect["decisions"]:
        raise ScenarioFailed(f"expected decisions {expect['decisions']}, got {outcome.decisions}")
    if "visited" in expect and outcome.visited != list(expect["visited"]):
        raise ScenarioFailed(f"expected visited {expect['visited']}, got {outcome.visited}")
    if "linked" in expect and outcome.linked != sorted(expect["linked"]):
        raise ScenarioFailed(f"expected linked {sorted(expect['linked'])}, got {outcome.linked}")


def run_scenario_data(
    factory: sessionmaker[Session], procedure: str, scenario: Mapping[str, Any]
) -> ScenarioOutcome:
    """Run a scenario on the database behind ``factory``; raise ScenarioFailed on a miss.

    The clock is frozen while time is advanced and always released afterwards.
    """
    steps = scenario.get("steps", [])
    if not isinstance(steps, list) or len(steps) > MAX_STEPS:
        raise ScenarioFailed(f"a scenario needs a list of at most {MAX_STEPS} steps")
    with unit_of_work(factory) as s:
        case_id = _start(s, procedure, scenario.get("intake") or {})
    offset = timedelta(0)
    try:
        for number, step in enumerate(steps, start=1):
            if offset:
                clock.frozen = datetime.now(UTC) + offset
            if not isinstance(step, Mapping):
                raise ScenarioFailed(f"step {number} is not an object")
            try:
                if "advance" in step:
                    offset = _advance(factory, offset, str(step["advance"]))
                else:
                    _step(factory, case_id, step)
            except ScenarioFailed as exc:
                raise ScenarioFailed(f"step {number}: {exc}") from None
            except Exception as exc:
                raise ScenarioFailed(f"step {number}: {type(exc).__name__}: {exc}") from None
        with factory() as s:
            outcome = _outcome(s, case_id)
    finally:
        clock.frozen = None
    _compare(outcome, scenario.get("expect") or {})
    return outcome
