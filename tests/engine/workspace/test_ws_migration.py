"""Running cases stay on their version after a publish; they move only through an explicit,
audited migration, and only when no step they started or finished changed."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from ws_kit import BPMN_DIR, edited, procedure

from engine import workspace
from engine.errors import Conflict
from engine.models import AuditEntry, OpenTask, ProcessInstance
from tests.conftest import actor
from tests.engine.engine_testkit import (
    CONVERSATION,
    SCREENING,
    complete,
    instance_of,
    open_tasks,
    start,
)


def _publish(db: Session, xml: str, forms: dict[str, Any] | None = None) -> int:
    """Draft, submit and approve a version (two process owners); its id."""
    owner, second = actor(db, "processagare"), actor(db, "processagare2")
    files = procedure(xml.split('<bpmn:process id="', 1)[1].split('"', 1)[0])
    version, result = workspace.save_draft(
        db, owner, bpmn_xml=xml, forms=files.forms if forms is None else forms
    )
    assert result.ok, [str(p) for p in result.problems]
    workspace.submit(db, owner, version.id)
    workspace.approve(db, second, version.id)
    db.commit()
    return version.id


def _case_at_conversation(db: Session) -> int:
    """An identification case whose screening is done and conversation step is open."""
    case = start(db, actor(db, "handlaggare"))
    complete(db, case.id, "task_screen_acute", SCREENING)
    db.commit()
    return case.id


def _fresh_case(db: Session) -> int:
    case = start(db, actor(db, "handlaggare"))
    db.commit()
    return case.id


def _state(db: Session, case_id: int) -> tuple[int, str, int]:
    db.expire_all()
    instance, _ = instance_of(db, case_id)
    return instance.version_id, instance.state, instance.version


def test_a_running_case_stays_and_moves_only_through_migration(db: Session) -> None:
    case_id = _case_at_conversation(db)
    old_version_id = _state(db, case_id)[0]
    # v2 renames a later step: nothing the case has touched
    new_id = _publish(
        db, edited("identification", 'name="A4 Indikatorbedömning"', 'name="A4 Ny etikett"')
    )
    assert _state(db, case_id)[0] == old_version_id, "a publish moved a running case"

    before = _state(db, case_id)
    plans = workspace.migration_plan(db, new_id)
    assert [(p.case_id, p.can_move, p.reasons) for p in plans] == [(case_id, True, [])]
    report = workspace.migrate(db, actor(db, "processagare"), new_id)  # dry run
    db.commit()
    assert not report.applied and report.moved == [] and _state(db, case_id) == before

    report = workspace.migrate(db, actor(db, "processagare"), new_id, apply=True)
    db.commit()
    assert report.applied and len(report.moved) == 1
    assert _state(db, case_id)[0] == new_id
    # the open step keeps its id, and the case runs on under the new version
    assert [t.bpmn_id for t in open_tasks(db, case_id)] == ["task_hold_conversation"]
    complete(db, case_id, "task_hold_conversation", CONVERSATION)
    db.commit()
    (next_task,) = open_tasks(db, case_id)
    assert next_task.bpmn_id == "task_assess_indicators" and next_task.name == "A4 Ny etikett"
    actions = set(
        db.execute(
            select(AuditEntry.action).where(
                AuditEntry.action.in_(
                    [
                        "process_instance:migrated",
                        "process_version:migration_planned",
                        "process_version:migration_applied",
                    ]
                )
            )
        ).scalars()
    )
    assert actions == {
        "process_instance:migrated",
        "process_version:migration_planned",
        "process_version:migration_applied",
    }


def test_a_case_whose_finished_step_changed_cannot_move(db: Session) -> None:
    moved_case = _fresh_case(db)  # only screening open: the conversation step is untouched
    kept_case = _case_at_conversation(db)  # screening done, conversation open
    new_id = _publish(db, _conversation_renamed())
    plans = {p.case_id: p for p in workspace.migration_plan(db, new_id)}
    assert plans[moved_case].can_move
    assert not plans[kept_case].can_move
    assert any("task_hold_conversation" in r for r in plans[kept_case].reasons)
    assert any("task_hold_conversation" in r for r in plans[kept_case].reasons_sv)
    report = workspace.migrate(db, actor(db, "processagare"), new_id, apply=True)
    db.commit()
    assert report.moved == [instance_of(db, moved_case)[0].id]
    assert _state(db, kept_case)[0] != new_id


def _conversation_renamed() -> str:
    text = procedure("identification").bpmn_xml.decode()
    start_tag = text.index('<bpmn:userTask id="task_hold_conversation" name="')
    name_start = start_tag + len('<bpmn:userTask id="task_hold_conversation" name="')
    name_end = text.index('"', name_start)
    return text[:name_start] + "A3 Nytt namn" + text[name_end:]


def test_a_changed_form_of_a_finished_step_blocks_the_move(db: Session) -> None:
    case_id = _case_at_conversation(db)
    files = procedure("identification")
    forms = copy.deepcopy(files.forms)
    screening_form = next(
        key for key in forms if key.endswith("screening") or key.endswith("acute")
    )
    forms[screening_form]["components"].append(
        {"type": "textfield", "key": "extra_note", "label": {"sv": "Extra", "en": "Extra"}}
    )
    new_id = _publish(db, files.bpmn_xml.decode() + "\n", forms)
    (plan,) = workspace.migration_plan(db, new_id)
    assert plan.case_id == case_id and not plan.can_move
    assert any(screening_form in r for r in plan.reasons)


def test_only_a_published_version_takes_instances(db: Session) -> None:
    _fresh_case(db)
    files = procedure("identification")
    draft, _ = workspace.save_draft(
        db, actor(db, "processagare"), bpmn_xml=_conversation_renamed(), forms=files.forms
    )
    db.commit()
    plans = workspace.migration_plan(db, draft.id)
    assert plans and not any(p.can_move for p in plans)
    assert "the target version is not published" in plans[0].reasons
    with pytest.raises(Conflict):
        workspace.migrate(db, actor(db, "processagare"), draft.id, apply=True)


def test_a_waiting_deadline_timer_keeps_its_due_time(db: Session) -> None:
    scenario = json.loads(
        (
            BPMN_DIR / "housing_notification" / "scenarios" / "04_no_action_deadline_escalated.json"
        ).read_text(encoding="utf-8")
    )
    case = start(db, actor(db, "handlaggare"), scenario["intake"], procedure="housing_notification")
    db.commit()
    step = scenario["steps"][0]
    complete(db, case.id, step["complete"], step["data"])
    db.commit()
    instance, _ = instance_of(db, case.id)
    due = instance.next_timer_due_at
    assert due is not None, "the route decision's deadline timer should be waiting"
    new_id = _publish(
        db,
        edited(
            "housing_notification", 'name="C5 Underrättelse till Huge"', 'name="C5 Brev till Huge"'
        ),
    )
    report = workspace.migrate(db, actor(db, "processagare"), new_id, apply=True)
    db.commit()
    assert report.moved == [instance.id]
    db.expire_all()
    moved = db.get(ProcessInstance, instance.id)
    assert moved is not None and moved.version_id == new_id
    assert moved.next_timer_due_at == due
    assert {t.bpmn_id for t in open_tasks(db, case.id)} == {
        t.bpmn_id
        for t in db.execute(
            select(OpenTask).where(OpenTask.case_id == case.id, OpenTask.status == "open")
        ).scalars()
    }


def test_plan_lists_only_running_instances_of_the_same_procedure(db: Session) -> None:
    case_id = _fresh_case(db)
    new_id = _publish(db, _conversation_renamed())
    assert [p.case_id for p in workspace.migration_plan(db, new_id)] == [case_id]
    victim = workspace.list_versions(db, "victim_support")[0]
    assert workspace.migration_plan(db, victim.id) == []
