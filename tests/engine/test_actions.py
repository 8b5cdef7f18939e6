"""engine.actions: the refusals (404/403/409/422) as carefully as the happy paths."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from engine_testkit import (
    ASSESSMENT,
    BASIC_INTAKE,
    BPMN_DIR,
    INDICATORS,
    SCREENING,
    app_on,
    complete,
    complete_committed,
    factory,
    instance_of,
    make_user,
    newest_decision,
    open_task,
    open_tasks,
    propose_assessment,
    run_to_assessment,
    start,
    start_committed,
    vuxen,
)
from flask import Flask
from sqlalchemy import func, select

from engine import access, actions, queries
from engine.audit import SYSTEM
from engine.db import clock, unit_of_work
from engine.errors import Conflict, Forbidden, NotFound, ValidationFailed
from engine.models import AuditEntry, Case, Decision, Draft, OpenTask
from engine.processes import ProcedureFiles, publish, read_procedure_folder
from tests.conftest import actor


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The app on a fresh database (a copy of a prepared SQLite template)."""
    yield from app_on(database_url, tmp_path)


@pytest.fixture
def case_id(app: Flask) -> int:
    """A freshly registered identification case (A2 open)."""
    return start_committed(app)


@pytest.fixture
def frozen_clock():  # type: ignore[no-untyped-def]
    """Lets a test set ``clock.frozen``; always unfreezes afterwards."""
    yield clock
    clock.frozen = None


def _task_data_at(app: Flask, case_id: int, bpmn_id: str) -> dict[str, Any]:
    with factory(app)() as s:
        return dict(queries.task_form_context(s, open_task(s, case_id, bpmn_id))["data"])


def _denials(app: Flask, action: str) -> list[AuditEntry]:
    with factory(app)() as s:
        return list(s.execute(select(AuditEntry).where(AuditEntry.action == action)).scalars())


# --------------------------------------------------------------------------- task data


def test_undeclared_keys_never_reach_task_data(app: Flask, case_id: int) -> None:
    data = {**SCREENING, "not_in_form": "x", "is_admin": True, "journal_note": "Anteckning"}
    complete_committed(app, case_id, "task_screen_acute", data)
    seen = _task_data_at(app, case_id, "task_hold_conversation")
    assert seen["exploitation_forms"] == ["labour"]
    assert "not_in_form" not in seen and "is_admin" not in seen
    with factory(app)() as s:
        entry = s.execute(
            select(AuditEntry).where(AuditEntry.action == "task:completed")
        ).scalar_one()
        assert "not_in_form" not in entry.details["fields"]
        assert "immediate_danger" in entry.details["fields"]


def test_undeclared_intake_keys_never_reach_task_data(app: Flask) -> None:
    """bpmn/README.md: only declared keys ever reach task data, the intake included."""
    case_id = start_committed(app, intake={**BASIC_INTAKE, "not_in_intake_form": "x"})
    seen = _task_data_at(app, case_id, "task_screen_acute")
    assert seen["referral_source"] == "police"
    assert "not_in_intake_form" not in seen


def test_identity_fields_stay_on_the_subject_not_in_task_data(app: Flask) -> None:
    intake = {
        **BASIC_INTAKE,
        "subject_name": "Lisa Lönn",
        "personnummer": "19900101-1234",
        "birth_date": "1990-01-01",
    }
    case_id = start_committed(app, intake=intake)
    seen = _task_data_at(app, case_id, "task_screen_acute")
    assert not {"subject_name", "personnummer", "birth_date"} & set(seen)
    with factory(app)() as s:
        case = s.get(Case, case_id)
        assert case is not None
        (subject,) = case.subjects
        assert (subject.name, subject.personnummer, subject.birth_date) == (
            "Lisa Lönn",
            "19900101-1234",
            "1990-01-01",
        )
        assert subject.gender == "woman"
        assert case.number.startswith("ID-")


def test_intake_with_non_json_value_is_a_validation_error(app: Flask) -> None:
    """Non-JSON intake data must be refused as invalid (422), not crash with a 500."""
    with factory(app)() as s, pytest.raises(ValidationFailed):
        start(
            s,
            actor(s, "handlaggare"),
            {**BASIC_INTAKE, "contact_datetime": datetime(2026, 3, 2, tzinfo=UTC)},
        )


@pytest.mark.parametrize(
    "username",
    ["arbetsledare", "kvinnofrid", "samordnare", "granskare", "enhetschef", "huge", "admin"],
)
def test_only_caseworkers_register_cases(app: Flask, username: str) -> None:
    with factory(app)() as s, pytest.raises(Forbidden):
        start(s, actor(s, username))


def test_caseworker_of_another_unit_cannot_register_here(app: Flask) -> None:
    with factory(app)() as s, pytest.raises(Forbidden):
        start(s, actor(s, "handlaggare.barn"), unit=vuxen(s))


# --------------------------------------------------------------------------- who may complete


@pytest.mark.parametrize(
    "username",
    [
        "arbetsledare",
        "enhetschef",
        "kvinnofrid",
        "samordnare",
        "handlaggare.barn",
        "granskare",
        "admin",
    ],
)
def test_completing_a_task_of_another_role_is_not_found(
    app: Flask, case_id: int, username: str
) -> None:
    with unit_of_work(factory(app)) as s:
        task_id = open_task(s, case_id, "task_screen_acute").id
    with factory(app)() as s:
        with pytest.raises(NotFound):
            actions.complete_task(s, actor(s, username), task_id=task_id, data=SCREENING)
        s.commit()  # the web layer keeps the denial in the log
    with factory(app)() as s:
        assert open_task(s, case_id, "task_screen_acute").id == task_id
    denied = _denials(app, "task:denied")
    assert [(d.actor_name, d.object_id, d.outcome) for d in denied] == [
        (username, task_id, "denied")
    ]


def test_unknown_task_id_is_not_found(app: Flask, case_id: int) -> None:
    with factory(app)() as s, pytest.raises(NotFound):
        actions.complete_task(
            s, actor(s, "handlaggare"), task_id="00000000-0000-0000-0000-000000000000", data={}
        )


def test_completing_twice_is_a_conflict_naming_who_did_it(app: Flask, case_id: int) -> None:
    with factory(app)() as s:
        task_id = open_task(s, case_id, "task_screen_acute").id
    complete_committed(app, case_id, "task_screen_acute", SCREENING)
    for username in ("handlaggare", "arbetsledare"):
        with factory(app)() as s, pytest.raises(Conflict) as caught:
            actions.complete_task(s, actor(s, username), task_id=task_id, data=SCREENING)
        assert caught.value.status == 409
        assert caught.value.details["completed_by"] == "Hanna Handläggare"
        assert caught.value.details["completed_at"]
        assert caught.value.details["case_id"] == case_id
    with factory(app)() as s:
        assert [t.bpmn_id for t in open_tasks(s, case_id)] == ["task_hold_conversation"]


def test_stale_expected_version_is_a_conflict(app: Flask, case_id: int) -> None:
    with factory(app)() as s:
        seen_version = instance_of(s, case_id)[0].version
    complete_committed(app, case_id, "task_screen_acute", SCREENING)
    with factory(app)() as s:
        task_id = open_task(s, case_id, "task_hold_conversation").id
        with pytest.raises(Conflict):
            actions.complete_task(
                s, actor(s, "handlaggare"), task_id=task_id, data={}, expected_version=seen_version
            )
        s.rollback()
        current = instance_of(s, case_id)[0].version
        assert current != seen_version
    with unit_of_work(factory(app)) as s:
        actions.complete_task(
            s,
            actor(s, "handlaggare"),
            task_id=task_id,
            data={"conversation_held_alone": True},
            expected_version=current,
        )
    with factory(app)() as s:
        assert instance_of(s, case_id)[0].version != current


def test_approval_task_cannot_be_completed_as_a_form(app: Flask, case_id: int) -> None:
    run_to_assessment(app, case_id)
    propose_assessment(app, case_id)
    with factory(app)() as s:
        task = open_task(s, case_id, "task_approve_assessment")
        with pytest.raises(Forbidden):
            actions.complete_task(
                s,
                actor(s, "arbetsledare"),
                task_id=task.id,
                data={"assessment_approval": "approved"},
            )


def test_proposal_without_outcome_is_refused(app: Flask, case_id: int) -> None:
    run_to_assessment(app, case_id)
    with factory(app)() as s:
        task = open_task(s, case_id, "task_propose_assessment")
        with pytest.raises(ValidationFailed) as caught:
            actions.complete_task(
                s,
                actor(s, "handlaggare"),
                task_id=task.id,
                data={"assessment_reasons": "Inget utfall."},
            )
        assert "assessment_outcome" in caught.value.field_errors


# --------------------------------------------------------------------------- four eyes


def test_proposal_records_a_proposed_decision(app: Flask, case_id: int) -> None:
    run_to_assessment(app, case_id)
    decision_id = propose_assessment(app, case_id)
    with factory(app)() as s:
        decision = newest_decision(s, case_id, "D-A6")
        assert decision.id == decision_id
        assert (decision.status, decision.outcome) == ("proposed", ASSESSMENT["assessment_outcome"])
        assert decision.reasons == ASSESSMENT["assessment_reasons"]
        approval = open_task(s, case_id, "task_approve_assessment")
        assert approval.decision_id == decision_id and approval.role == "supervisor"


def test_approving_your_own_proposal_is_forbidden(app: Flask, case_id: int) -> None:
    with unit_of_work(factory(app)) as s:
        unit = vuxen(s)
        make_user(s, "dubbelroll", [("caseworker", unit), ("supervisor", unit)])
    run_to_assessment(app, case_id)
    decision_id = propose_assessment(app, case_id, username="dubbelroll")
    with factory(app)() as s:
        with pytest.raises(Forbidden, match="other than its proposer"):
            actions.decide(
                s, actor(s, "dubbelroll"), decision_id=decision_id, approve=True, comment=None
            )
        s.rollback()
        assert newest_decision(s, case_id, "D-A6").status == "proposed"
    with unit_of_work(factory(app)) as s:
        actions.decide(
            s, actor(s, "arbetsledare"), decision_id=decision_id, approve=True, comment=None
        )
    with factory(app)() as s:
        decision = newest_decision(s, case_id, "D-A6")
        assert decision.status == "approved"
        assert decision.decided_by_id == actor(s, "arbetsledare").user_id
        assert decision.decided_at is not None
        assert open_task(s, case_id, "task_propose_police_report")


def test_caseworker_cannot_approve(app: Flask, case_id: int) -> None:
    with unit_of_work(factory(app)) as s:
        make_user(s, "handlaggare2", [("caseworker", vuxen(s))])
    run_to_assessment(app, case_id)
    decision_id = propose_assessment(app, case_id, username="handlaggare2")
    with factory(app)() as s:
        with pytest.raises(Forbidden, match="supervisor"):
            actions.decide(
                s, actor(s, "handlaggare"), decision_id=decision_id, approve=True, comment=None
            )
        s.rollback()
        assert newest_decision(s, case_id, "D-A6").status == "proposed"
        assert open_task(s, case_id, "task_approve_assessment")


def test_supervisor_of_another_unit_cannot_see_the_decision(app: Flask, case_id: int) -> None:
    run_to_assessment(app, case_id)
    decision_id = propose_assessment(app, case_id)
    with factory(app)() as s, pytest.raises(NotFound):
        actions.decide(
            s, actor(s, "arbetsledare.barn"), decision_id=decision_id, approve=True, comment=None
        )


@pytest.mark.parametrize("comment", [None, "", "   \n"])
def test_returning_without_a_comment_is_refused(
    app: Flask, case_id: int, comment: str | None
) -> None:
    run_to_assessment(app, case_id)
    decision_id = propose_assessment(app, case_id)
    with factory(app)() as s:
        with pytest.raises(ValidationFailed) as caught:
            actions.decide(
                s, actor(s, "arbetsledare"), decision_id=decision_id, approve=False, comment=comment
            )
        assert "comment" in caught.value.field_errors


def test_returning_reopens_the_proposal(app: Flask, case_id: int) -> None:
    run_to_assessment(app, case_id)
    decision_id = propose_assessment(app, case_id)
    with unit_of_work(factory(app)) as s:
        actions.decide(
            s,
            actor(s, "arbetsledare"),
            decision_id=decision_id,
            approve=False,
            comment="  Motivera bättre.  ",
        )
    with factory(app)() as s:
        decision = newest_decision(s, case_id, "D-A6")
        assert (decision.status, decision.comment) == ("returned", "Motivera bättre.")
        assert [t.bpmn_id for t in open_tasks(s, case_id)] == ["task_propose_assessment"]
    second = propose_assessment(app, case_id)
    assert second != decision_id
    with factory(app)() as s:
        assert open_task(s, case_id, "task_approve_assessment").decision_id == second


def test_deciding_twice_is_a_conflict(app: Flask, case_id: int) -> None:
    run_to_assessment(app, case_id)
    decision_id = propose_assessment(app, case_id)
    with unit_of_work(factory(app)) as s:
        actions.decide(
            s, actor(s, "arbetsledare"), decision_id=decision_id, approve=True, comment=None
        )
    with factory(app)() as s, pytest.raises(Conflict) as caught:
        actions.decide(
            s, actor(s, "enhetschef"), decision_id=decision_id, approve=False, comment="För sent"
        )
    assert caught.value.details["completed_by"] == "Anna Arbetsledare"


# --------------------------------------------------------------------------- claim / unclaim


def test_claim_and_unclaim(app: Flask, case_id: int) -> None:
    with unit_of_work(factory(app)) as s:
        make_user(s, "handlaggare2", [("caseworker", vuxen(s))])
        task_id = open_task(s, case_id, "task_screen_acute").id
    with unit_of_work(factory(app)) as s:
        task = actions.claim_task(s, actor(s, "handlaggare"), task_id=task_id)
        assert task.assignee_id == actor(s, "handlaggare").user_id
    with unit_of_work(factory(app)) as s:  # claiming your own task again is harmless
        actions.claim_task(s, actor(s, "handlaggare"), task_id=task_id)
    with factory(app)() as s:
        other = actor(s, "handlaggare2")
        assert task_id not in [t.id for t in queries.inbox(s, other)]
        assert task_id in [t.id for t in queries.inbox(s, actor(s, "handlaggare"))]
        for attempt in (
            lambda: actions.claim_task(s, other, task_id=task_id),
            lambda: actions.unclaim_task(s, other, task_id=task_id),
            lambda: actions.complete_task(s, other, task_id=task_id, data=SCREENING),
        ):
            with pytest.raises(NotFound):
                attempt()
    with unit_of_work(factory(app)) as s:
        task = actions.unclaim_task(s, actor(s, "handlaggare"), task_id=task_id)
        assert task.assignee_id is None
    with unit_of_work(factory(app)) as s:
        assert task_id in [t.id for t in queries.inbox(s, actor(s, "handlaggare2"))]
        actions.claim_task(s, actor(s, "handlaggare2"), task_id=task_id)
    with factory(app)() as s, pytest.raises(NotFound):
        actions.complete_task(s, actor(s, "handlaggare"), task_id=task_id, data=SCREENING)
    complete_committed(app, case_id, "task_screen_acute", SCREENING, username="handlaggare2")
    with factory(app)() as s:
        done = s.get(OpenTask, task_id)
        assert done is not None and done.completed_by_id == actor(s, "handlaggare2").user_id
        actions_logged = list(
            s.execute(select(AuditEntry.action).where(AuditEntry.object_id == task_id)).scalars()
        )
        assert actions_logged.count("task:claimed") == 3
        assert actions_logged.count("task:unclaimed") == 1
        with pytest.raises(Conflict):
            actions.claim_task(s, actor(s, "handlaggare2"), task_id=task_id)


# --------------------------------------------------------------------------- drafts


def test_drafts_are_per_user_and_deleted_on_completion(app: Flask, case_id: int) -> None:
    with unit_of_work(factory(app)) as s:
        make_user(s, "handlaggare2", [("caseworker", vuxen(s))])
        task_id = open_task(s, case_id, "task_screen_acute").id
    with unit_of_work(factory(app)) as s:
        actions.save_draft(
            s,
            actor(s, "handlaggare"),
            task_id=task_id,
            data={"immediate_danger": "ja?", "half": "typed"},
        )
        actions.save_draft(
            s, actor(s, "handlaggare2"), task_id=task_id, data={"immediate_danger": False}
        )
    with unit_of_work(factory(app)) as s:
        actions.save_draft(
            s, actor(s, "handlaggare"), task_id=task_id, data={"immediate_danger": True}
        )
    with factory(app)() as s:
        assert actions.load_draft(s, actor(s, "handlaggare"), task_id) == {"immediate_danger": True}
        assert actions.load_draft(s, actor(s, "handlaggare2"), task_id) == {
            "immediate_danger": False
        }
        assert actions.load_draft(s, actor(s, "arbetsledare"), task_id) is None
        with pytest.raises(NotFound):  # only those who may work the task keep drafts for it
            actions.save_draft(s, actor(s, "arbetsledare"), task_id=task_id, data={"x": 1})
    complete_committed(app, case_id, "task_screen_acute", SCREENING)
    with factory(app)() as s:
        assert actions.load_draft(s, actor(s, "handlaggare"), task_id) is None
        assert actions.load_draft(s, actor(s, "handlaggare2"), task_id) is None
        assert s.execute(select(Draft).where(Draft.task_id == task_id)).first() is None


# --------------------------------------------------------------------------- deadlines


def test_due_dates_count_working_days(app: Flask, frozen_clock: Any) -> None:
    thursday = datetime(2026, 3, 5, 10, 0, tzinfo=UTC)
    assert thursday.weekday() == 3
    frozen_clock.frozen = thursday
    case_id = start_committed(app)
    complete_committed(app, case_id, "task_screen_acute", SCREENING)
    frozen_clock.frozen = datetime(2026, 3, 6, 10, 0, tzinfo=UTC)  # Friday
    complete_committed(app, case_id, "task_hold_conversation", {})
    with factory(app)() as s:
        # A4: one working day from when the task opened (Friday) -> Monday.
        assert open_task(s, case_id, "task_assess_indicators").due_at == datetime(
            2026, 3, 9, 10, 0, tzinfo=UTC
        )
    complete_committed(app, case_id, "task_assess_indicators", INDICATORS)
    complete_committed(app, case_id, "task_request_consultation", {})
    complete_committed(app, case_id, "task_record_consultation", {})
    with factory(app)() as s:
        task = open_task(s, case_id, "task_propose_assessment")
        # A6: five working days from registration (Thursday), skipping the weekend.
        assert task.due_at == datetime(2026, 3, 12, 10, 0, tzinfo=UTC)
        assert task.due_at.tzinfo is not None
        view = queries.task_view(s, task)
        assert view.overdue is False
        frozen_clock.frozen = datetime(2026, 3, 12, 10, 1, tzinfo=UTC)
        assert queries.task_view(s, task).overdue is True


# --------------------------------------------------------------------------- protected identity


def test_protected_identity_case_is_hidden_from_oversight(app: Flask) -> None:
    intake = {**BASIC_INTAKE, "protected_identity_type": "skyddad_folkbokforing"}
    case_id = start_committed(app, intake=intake)
    with factory(app)() as s:
        case = s.get(Case, case_id)
        assert case is not None and case.secrecy_class == "PROTECTED_IDENTITY"
        assert access.is_protected(case)
        for username in ("arbetsledare", "enhetschef"):
            who = actor(s, username)
            with pytest.raises(NotFound):
                access.access_case(s, who, case_id)
            assert case_id not in access.visible_case_ids(s, who)
        assert access.access_case(s, actor(s, "handlaggare"), case_id).id == case_id
    run_to_assessment(app, case_id)
    propose_assessment(app, case_id)
    with factory(app)() as s:
        # The supervisor now has the approval task: that gives access, the manager still none.
        supervisor = actor(s, "arbetsledare")
        assert access.access_case(s, supervisor, case_id).id == case_id
        assert case_id in access.visible_case_ids(s, supervisor)
        with pytest.raises(NotFound):
            access.access_case(s, actor(s, "enhetschef"), case_id)
    with unit_of_work(factory(app)) as s:
        decision = newest_decision(s, case_id, "D-A6")
        actions.decide(
            s, actor(s, "arbetsledare"), decision_id=decision.id, approve=True, comment=None
        )
    with factory(app)() as s:
        assert complete(
            s,
            case_id,
            "task_propose_police_report",
            {"police_outcome": "NOT_REPORTED_NO_GROUND", "police_reasons": "Ingen grund."},
        )


# --------------------------------------------------------------------------- one command, one tx


def test_a_refused_command_leaves_nothing_behind(app: Flask, case_id: int) -> None:
    """The outcome check fails after the engine has stepped: everything rolls back and
    the same task can be completed afterwards, once (security.md §5.3 test 2)."""
    run_to_assessment(app, case_id)
    with factory(app)() as s:
        instance, _ = instance_of(s, case_id)
        state_before, version_before = instance.state, instance.version
        seq_before = s.execute(select(func.max(AuditEntry.seq))).scalar_one()
        task_id = open_task(s, case_id, "task_propose_assessment").id
    with factory(app)() as s:
        with pytest.raises(ValidationFailed):
            actions.complete_task(
                s,
                actor(s, "handlaggare"),
                task_id=task_id,
                data={"assessment_reasons": "Utan utfall."},
            )
        s.rollback()
    with factory(app)() as s:
        instance, _ = instance_of(s, case_id)
        assert (instance.state, instance.version) == (state_before, version_before)
        assert s.execute(select(func.max(AuditEntry.seq))).scalar_one() == seq_before
        assert s.execute(select(Decision).where(Decision.case_id == case_id)).first() is None
        assert open_task(s, case_id, "task_propose_assessment").id == task_id
    propose_assessment(app, case_id)
    with factory(app)() as s:
        assert len(s.execute(select(Decision).where(Decision.case_id == case_id)).all()) == 1


def test_running_cases_stay_on_their_version(app: Flask, case_id: int) -> None:
    """Publishing a new model version never moves running cases (security.md §5.3 test 8)."""
    with unit_of_work(factory(app)) as s:
        files = read_procedure_folder(BPMN_DIR / "identification")
        changed = files.bpmn_xml.replace(
            b'name="A2 Akut bed\xc3\xb6mning"', b'name="A2 Akut bed\xc3\xb6mning (v2)"'
        )
        assert changed != files.bpmn_xml
        v2, new = publish(s, SYSTEM, ProcedureFiles(files.process_id, changed, files.forms))
        assert new and v2.number == 2
        v2_id = v2.id
    new_case = start_committed(app)
    with factory(app)() as s:
        old_version = instance_of(s, case_id)[1]
        assert old_version.number == 1
        assert open_task(s, case_id, "task_screen_acute").name == "A2 Akut bedömning"
        assert instance_of(s, new_case)[1].id == v2_id
        assert open_task(s, new_case, "task_screen_acute").name == "A2 Akut bedömning (v2)"
    complete_committed(app, case_id, "task_screen_acute", SCREENING)
    complete_committed(app, new_case, "task_screen_acute", SCREENING)
    with factory(app)() as s:
        assert instance_of(s, case_id)[1].number == 1
        assert instance_of(s, new_case)[1].number == 2


def test_a_completed_task_cannot_be_unclaimed(app: Flask, case_id: int) -> None:
    with factory(app)() as s:
        task_id = open_task(s, case_id, "task_screen_acute").id
    complete_committed(app, case_id, "task_screen_acute", SCREENING)
    with factory(app)() as s:
        with pytest.raises(Conflict):
            actions.unclaim_task(s, actor(s, "handlaggare"), task_id=task_id)
        s.rollback()
        done = s.get(OpenTask, task_id)
        assert done is not None and done.assignee_id == actor(s, "handlaggare").user_id


def test_no_drafts_for_a_completed_task(app: Flask, case_id: int) -> None:
    with factory(app)() as s:
        task_id = open_task(s, case_id, "task_screen_acute").id
    complete_committed(app, case_id, "task_screen_acute", SCREENING)
    with factory(app)() as s, pytest.raises(Conflict):
        actions.save_draft(s, actor(s, "handlaggare"), task_id=task_id, data={"x": "y"})
