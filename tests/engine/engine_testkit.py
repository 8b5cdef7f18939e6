"""Helpers shared by the engine tests: demo actors, starting identification cases through
``engine.actions`` and finding/completing their tasks, one transaction per step.

Everything goes through the engine's public API; nothing here touches engine internals.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine import actions, timers
from engine.audit import Actor
from engine.db import clock, unit_of_work
from engine.models import AuditEntry, Case, Decision, OpenTask, ProcessInstance, ProcessVersion
from engine.processes import latest_published, model_for
from forms.spec import load_form_spec
from tests.conftest import actor, make_app, unit_id

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BPMN_DIR = PROJECT_ROOT / "bpmn"
SCENARIOS = sorted(BPMN_DIR.glob("*/scenarios/*.json"))

#: The demo user who works a task of each lane.
ROLE_USERS = {
    "caseworker": "handlaggare",
    "supervisor": "arbetsledare",
    "dv_team": "kvinnofrid",
    "coordinator": "samordnare",
    "committee": "ordforande",
    "unit_manager": "enhetschef",
    "housing_contact": "huge",
}

DEMO_USERNAMES = (
    "handlaggare",
    "handlaggare.barn",
    "kvinnofrid",
    "arbetsledare",
    "arbetsledare.barn",
    "enhetschef",
    "samordnare",
    "ordforande",
    "huge",
    "processagare",
    "processagare2",
    "granskare",
    "admin",
)

#: A minimal intake for the identification procedure (step A1).
BASIC_INTAKE: dict[str, Any] = {
    "contact_datetime": "2026-03-02T10:15:00+01:00",
    "referral_source": "police",
    "contact_channel": "phone",
    "contact_place": "office",
    "identity_status": "known",
    "gender": "woman",
    "citizenship": "SE",
    "identity_documents": "held_by_self",
    "interpreter_needed": False,
    "protected_identity_type": "none",
    "residence_status": "swedish_citizen",
    "resides_in_huddinge": "yes",
    "companion_present": False,
    "age_doubt": False,
    "subject_name": "Testperson Ett",
}

SCREENING = {
    "immediate_danger": False,
    "children_involved": False,
    "exploitation_forms": ["labour"],
}
CONVERSATION = {
    "conversation_held_alone": True,
    "conversation_interpreter_used": False,
    "conversation_safe_place": True,
    "rights_information_given": ["interpreter"],
}
INDICATORS = {
    "indicators": ["lives_at_workplace"],
    "safety_risk": "low",
    "consents_given": [],
    "own_account": "Arbetar utan lön.",
}
CONSULT_REQUEST = {
    "consultation_question": "Råd?",
    "consultation_parties": ["coordinator"],
    "consultation_identity_mode": "anonymised",
}
CONSULT_NOTE = {
    "consultation_date": "2026-03-03",
    "consultation_rk_consulted": False,
    "consultation_nspm_line_used": False,
    "consultation_note": "Genomgånget.",
    "consultation_advice": "Dokumentera.",
}
ASSESSMENT = {
    "assessment_outcome": "PRESUMED_EXPLOITATION_4_1B",
    "assessment_reasons": "Oskäliga villkor.",
}

#: The steps before the first decision proposal, in order: (bpmn id, data).
PATH_TO_ASSESSMENT = (
    ("task_screen_acute", SCREENING),
    ("task_hold_conversation", CONVERSATION),
    ("task_assess_indicators", INDICATORS),
    ("task_request_consultation", CONSULT_REQUEST),
    ("task_record_consultation", CONSULT_NOTE),
)


_TEMPLATE: list[Path] = []


def _sqlite_template() -> Path:
    """A SQLite file with the schema, the bundled models and the demo users, built once per
    test run (the demo password hash alone costs ~0.2 s per app)."""
    if not _TEMPLATE:
        folder = Path(tempfile.mkdtemp(prefix="lotsen-template-"))
        built = make_app(f"sqlite:///{folder / 'template.db'}", folder)
        built.extensions["lotsen_engine"].dispose()  # checkpoints the WAL into the file
        _TEMPLATE.append(folder / "template.db")
    return _TEMPLATE[0]


def app_on(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The body of an ``app`` fixture: like tests.conftest's, but a SQLite database is a
    copy of a prepared template instead of being built from scratch."""
    if database_url.startswith("sqlite:///"):
        from webapp import create_app

        shutil.copyfile(_sqlite_template(), database_url.removeprefix("sqlite:///"))
        application = create_app(
            {
                "LOTSEN_DATABASE_URL": database_url,
                "LOTSEN_ENV": "test",
                "LOTSEN_DEMO": "1",
                "LOTSEN_INSTANCE_DIR": str(tmp_path),
                "TESTING": True,
            }
        )
    else:
        application = make_app(database_url, tmp_path)
    yield application
    application.extensions["lotsen_engine"].dispose()


def factory(app: Flask) -> sessionmaker[Session]:
    """The app's session factory (each call gives a new session)."""
    return app.extensions["lotsen_db"]  # type: ignore[no-any-return]


def actors(session: Session) -> dict[str, Actor]:
    """Every demo user as an engine actor, by username."""
    return {name: actor(session, name) for name in DEMO_USERNAMES}


def vuxen(session: Session) -> int:
    """The id of the demo unit Vuxenenheten."""
    return unit_id(session, "vuxenenheten")


def subject_fields(session: Session, procedure: str = "identification") -> dict[str, str]:
    """The intake form's {data key: subject field} map of the newest published version."""
    version = latest_published(session, procedure)
    model = model_for(version)
    assert model.start_form_key, f"{procedure} has no start form"
    return load_form_spec(version.forms[model.start_form_key]).subject_fields


def start(
    session: Session,
    by: Actor,
    intake: Mapping[str, Any] | None = None,
    *,
    procedure: str = "identification",
    unit: int | None = None,
) -> Case:
    """Register a case through ``actions.start_case`` (the caller commits)."""
    return actions.start_case(
        session,
        by,
        procedure=procedure,
        unit_id=unit if unit is not None else vuxen(session),
        intake=dict(BASIC_INTAKE if intake is None else intake),
        subject_fields=subject_fields(session, procedure),
    )


def start_committed(app: Flask, username: str = "handlaggare", **kwargs: Any) -> int:
    """Register a case in its own transaction; return its id."""
    with unit_of_work(factory(app)) as s:
        case = start(s, actor(s, username), **kwargs)
        return case.id


def open_tasks(session: Session, case_id: int) -> list[OpenTask]:
    """The open task rows of a case."""
    return list(
        session.execute(
            select(OpenTask)
            .where(OpenTask.case_id == case_id, OpenTask.status == "open")
            .order_by(OpenTask.created_at, OpenTask.id)
        ).scalars()
    )


def open_task(session: Session, case_id: int, bpmn_id: str) -> OpenTask:
    """The one open task with ``bpmn_id`` in the case (fails loudly otherwise)."""
    rows = [t for t in open_tasks(session, case_id) if t.bpmn_id == bpmn_id]
    ready = [t.bpmn_id for t in open_tasks(session, case_id)]
    assert len(rows) == 1, f"expected one open {bpmn_id}, open tasks are {ready}"
    return rows[0]


def done_bpmn_ids(session: Session, case_id: int) -> list[str]:
    """BPMN ids of the case's completed task rows, in completion order."""
    rows = session.execute(
        select(OpenTask.bpmn_id)
        .where(OpenTask.case_id == case_id, OpenTask.status == "done")
        .order_by(OpenTask.completed_at, OpenTask.created_at)
    ).scalars()
    return list(rows)


def user_for(session: Session, task: OpenTask, *, not_user: int | None = None) -> Actor:
    """The demo user who works ``task``: the usual one of its lane (``ROLE_USERS``) when
    they hold the role for the task's unit, else the first demo user who does (the child
    unit's caseworker, the unit manager, ...). ``not_user``: skip this user (four eyes)."""
    from engine import access

    preferred = ROLE_USERS.get(task.role or "")
    names = [preferred] if preferred else []
    names += [n for n in DEMO_USERNAMES if n != preferred]
    for name in names:
        who = actor(session, name)
        if who.user_id == not_user:
            continue
        if access.task_matches(who, task) or (
            task.decision_id is not None and access.can_approve(who, task)
        ):
            return who
    raise AssertionError(f"no demo user may work {task.bpmn_id} (role {task.role})")


def approver_for(session: Session, decision: Decision) -> Actor:
    """The demo user who approves or returns ``decision`` (its open approval task)."""
    task = session.execute(
        select(OpenTask).where(OpenTask.decision_id == decision.id, OpenTask.status == "open")
    ).scalar_one_or_none()
    assert task is not None, f"decision {decision.decision_type} has no open approval task"
    return user_for(session, task, not_user=decision.proposed_by_id)


def complete(
    session: Session,
    case_id: int,
    bpmn_id: str,
    data: Mapping[str, Any],
    username: str | None = None,
) -> actions.CompletionResult:
    """Complete the open ``bpmn_id`` task as the demo user of its lane (claims it first)."""
    task = open_task(session, case_id, bpmn_id)
    who = actor(session, username) if username else user_for(session, task)
    if task.assignee_id is None:
        actions.claim_task(session, who, task_id=task.id)
    return actions.complete_task(session, who, task_id=task.id, data=dict(data))


def complete_committed(
    app: Flask, case_id: int, bpmn_id: str, data: Mapping[str, Any], username: str | None = None
) -> actions.CompletionResult:
    """``complete`` in its own transaction."""
    with unit_of_work(factory(app)) as s:
        return complete(s, case_id, bpmn_id, data, username)


def newest_decision(
    session: Session, case_id: int, decision_type: str, status: str | None = None
) -> Decision:
    """The newest decision of a type in the case (optionally with a given status)."""
    query = select(Decision).where(
        Decision.case_id == case_id, Decision.decision_type == decision_type
    )
    if status is not None:
        query = query.where(Decision.status == status)
    decision = session.execute(query.order_by(Decision.id.desc()).limit(1)).scalar_one_or_none()
    assert decision is not None, f"no {decision_type} decision in case {case_id}"
    return decision


def run_to_assessment(app: Flask, case_id: int) -> None:
    """Complete A2-A5 (each step its own transaction) so the D-A6 proposal is open."""
    for bpmn_id, data in PATH_TO_ASSESSMENT:
        complete_committed(app, case_id, bpmn_id, data)


def propose_assessment(app: Flask, case_id: int, username: str = "handlaggare") -> int:
    """Complete A6 (the D-A6 proposal) and return the decision id."""
    result = complete_committed(app, case_id, "task_propose_assessment", ASSESSMENT, username)
    assert result.decision_id is not None
    return result.decision_id


def instance_of(session: Session, case_id: int) -> tuple[ProcessInstance, ProcessVersion]:
    """The case's (single) process instance and its pinned version."""
    instance = session.execute(
        select(ProcessInstance).where(ProcessInstance.case_id == case_id)
    ).scalar_one()
    version = session.get(ProcessVersion, instance.version_id)
    assert version is not None
    return instance, version


def audit_count(session: Session, action: str | None = None, case_id: int | None = None) -> int:
    """How many audit entries match."""
    query = select(func.count()).select_from(AuditEntry)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if case_id is not None:
        query = query.where(AuditEntry.case_id == case_id)
    return int(session.execute(query).scalar_one())


def load_scenario(path: Path) -> dict[str, Any]:
    """A scenario file as data."""
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def make_user(session: Session, username: str, roles: list[tuple[str, int | None]]) -> Actor:
    """Create an extra staff account with the given (role, unit id) assignments."""
    from engine.models import RoleAssignment, User

    user = User(username=username, display_name=username.title(), active=True)
    user.roles = [RoleAssignment(role=role, unit_id=unit) for role, unit in roles]
    session.add(user)
    session.flush()
    return actor(session, username)


def iso_timedelta(duration: str, start: datetime) -> timedelta:
    """How far ``duration`` reaches from ``start``, computed as SpiffWorkflow's timers do
    (calendar months and years, days of 24 h in UTC), so ``advance`` matches ``timeDuration``."""
    from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

    parsed = TimerEventDefinition.parse_iso_duration(duration)
    delta: timedelta = TimerEventDefinition.get_timedelta_from_start(parsed, start)
    return delta


class ScenarioClock:
    """Scenario time: the real time plus every ``advance`` so far.

    Until the first ``advance`` the clock is not touched. After it, ``tick()`` before each step
    freezes ``engine.db.clock`` at "now + offset", so steps keep distinct, increasing
    timestamps (the ``visited`` order relies on them) and SpiffWorkflow's timers, which read
    the same clock (engine.timers), agree. ``reset()`` unfreezes.
    """

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def tick(self) -> None:
        if self.offset:
            clock.frozen = datetime.now(UTC) + self.offset

    def advance(self, app: Flask, duration: str) -> timers.PassStats:
        """Move the clock forward by an ISO 8601 duration and run the timer worker once."""
        now = datetime.now(UTC) + self.offset
        self.offset += iso_timedelta(duration, now)
        self.tick()
        return timers.run_until_drained(factory(app), "scenario-runner")

    def reset(self) -> None:
        self.offset = timedelta(0)
        clock.frozen = None


def linked_procedures(session: Session, case_id: int) -> list[str] | None:
    """Procedures of the cases started from this one, sorted; None when the engine has no
    case links (``engine.models.CaseLink``) yet."""
    import engine.models as models

    link = getattr(models, "CaseLink", None)
    if link is None:
        return None
    rows = session.execute(
        select(Case.procedure)
        .join(link, link.to_case_id == Case.id)
        .where(link.from_case_id == case_id)
    ).scalars()
    return sorted(rows)


def run_scenario(app: Flask, path: Path) -> int:
    """Run a scenario file's steps through the engine's own runner (one transaction per step,
    as the workspace runs them for process owners); return the case id. Its ``expect`` is
    not checked here (tests also run files cut short); test_scenarios.py checks it, and walks
    the steps itself to check after every one."""
    from engine.workspace.scenario_runner import run_scenario_data

    steps_only = {**load_scenario(path), "expect": {}}
    return run_scenario_data(factory(app), path.parent.parent.name, steps_only).case_id
