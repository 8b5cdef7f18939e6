"""Linked cases started by a model, consents per purpose, and the disclosure gate."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import actions, audit
from engine.audit import SYSTEM
from engine.errors import Conflict, Forbidden, NotFound, ValidationFailed
from engine.models import AuditEntry, Case, CaseLink, Decision, OpenTask, Subject
from engine.processes import ProcedureFiles, publish
from tests.conftest import actor, unit_id

NS = (
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"'
)


def _props(**props: str) -> str:
    items = "".join(f'<spiffworkflow:property name="{k}" value="{v}" />' for k, v in props.items())
    return (
        "<bpmn:extensionElements><spiffworkflow:properties>"
        f"{items}</spiffworkflow:properties></bpmn:extensionElements>"
    )


PAYLOAD = "{'reason': 'child_found', 'each': [{'child_name': child_1}, {'child_name': child_2}]}"

PARENT = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {NS} id="d" targetNamespace="http://lotsen.test">
  <bpmn:message id="m_child" name="lotsen.start.mini_child" />
  <bpmn:process id="mini_parent" name="Mini parent" isExecutable="true">
    <bpmn:laneSet id="ls"><bpmn:lane id="l_cw" name="caseworker">
      <bpmn:flowNodeRef>start</bpmn:flowNodeRef><bpmn:flowNodeRef>task_find_children</bpmn:flowNodeRef>
      <bpmn:flowNodeRef>throw_children</bpmn:flowNodeRef>
      <bpmn:flowNodeRef>task_report_police</bpmn:flowNodeRef><bpmn:flowNodeRef>end</bpmn:flowNodeRef>
    </bpmn:lane></bpmn:laneSet>
    <bpmn:startEvent id="start">{_props(formKey="mini_intake")}<bpmn:outgoing>f1</bpmn:outgoing>
    </bpmn:startEvent>
    <bpmn:userTask id="task_find_children" name="Find children">{_props(formKey="mini_children")}
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:intermediateThrowEvent id="throw_children"><bpmn:incoming>f2</bpmn:incoming>
      <bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:messageEventDefinition messageRef="m_child"><bpmn:extensionElements>
        <spiffworkflow:messagePayload>{PAYLOAD}</spiffworkflow:messagePayload>
      </bpmn:extensionElements></bpmn:messageEventDefinition>
    </bpmn:intermediateThrowEvent>
    <bpmn:userTask id="task_report_police" name="Report to police">{
    _props(
        formKey="mini_police",
        disclosure="police",
        consentPurpose="CONSENT_POLICE_REPORT",
        legalGroundField="legal_ground",
        disclosureWhen="police_outcome == 'REPORTED'",
    )
}
      <bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="task_find_children" />
    <bpmn:sequenceFlow id="f2" sourceRef="task_find_children" targetRef="throw_children" />
    <bpmn:sequenceFlow id="f3" sourceRef="throw_children" targetRef="task_report_police" />
    <bpmn:sequenceFlow id="f4" sourceRef="task_report_police" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""

CHILD = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {NS} id="d2" targetNamespace="http://lotsen.test">
  <bpmn:process id="mini_child" name="Mini child" isExecutable="true">
    <bpmn:laneSet id="ls"><bpmn:lane id="l_cw" name="caseworker">
      <bpmn:flowNodeRef>start</bpmn:flowNodeRef><bpmn:flowNodeRef>task_assess_child</bpmn:flowNodeRef>
      <bpmn:flowNodeRef>end</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>
    <bpmn:startEvent id="start">{_props(formKey="child_intake")}<bpmn:outgoing>f1</bpmn:outgoing>
    </bpmn:startEvent>
    <bpmn:userTask id="task_assess_child" name="Assess child">{_props(formKey="child_assess")}
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="task_assess_child" />
    <bpmn:sequenceFlow id="f2" sourceRef="task_assess_child" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def _text(key: str, subject: str | None = None) -> dict[str, Any]:
    component: dict[str, Any] = {"type": "textfield", "key": key, "label": key}
    if subject:
        component["subjectField"] = subject
    return component


PARENT_FORMS = {
    "mini_intake": {"components": [_text("name", "name"), _text("note")]},
    "mini_children": {
        "components": [
            _text("child_1"),
            _text("child_2"),
            {
                "type": "checklist",
                "key": "consents_given",
                "label": "c",
                "values": [{"value": "CONSENT_POLICE_REPORT", "label": "p"}],
            },
        ]
    },
    "mini_police": {
        "components": [_text("police_outcome"), _text("legal_ground"), _text("override_reason")]
    },
}
CHILD_FORMS = {
    "child_intake": {"components": [_text("child_name", "name"), _text("reason")]},
    "child_assess": {"components": [_text("assessment")]},
}


@pytest.fixture
def models(app: Flask, db: Session) -> None:
    publish(db, SYSTEM, ProcedureFiles("mini_parent", PARENT.encode(), PARENT_FORMS))
    publish(db, SYSTEM, ProcedureFiles("mini_child", CHILD.encode(), CHILD_FORMS))
    db.commit()


def _start(db: Session) -> Case:
    case = actions.start_case(
        db,
        actor(db, "handlaggare"),
        procedure="mini_parent",
        unit_id=unit_id(db, "vuxenenheten"),
        intake={"name": "Vera", "note": "x", "junk": 1},
    )
    db.commit()
    return case


def _open_task(db: Session, case_id: int, bpmn_id: str) -> OpenTask:
    return db.execute(
        select(OpenTask).where(
            OpenTask.case_id == case_id, OpenTask.bpmn_id == bpmn_id, OpenTask.status == "open"
        )
    ).scalar_one()


def test_a_model_starts_one_linked_case_per_child(models: None, db: Session) -> None:
    case = _start(db)
    task = _open_task(db, case.id, "task_find_children")
    me = actor(db, "handlaggare")
    actions.complete_task(
        db, me, task_id=task.id, data={"child_1": "Anna", "child_2": "", "consents_given": []}
    )
    db.commit()
    links = db.execute(select(CaseLink).where(CaseLink.from_case_id == case.id)).scalars().all()
    assert len(links) == 1, "the empty child slot starts nothing"
    child = db.get(Case, links[0].to_case_id)
    assert child is not None and child.procedure == "mini_child"
    assert links[0].reason == "child_found"
    subject = db.execute(select(Subject).where(Subject.case_id == child.id)).scalar_one()
    assert subject.name == "Anna"
    # The linked case keeps its own access rules: starting it gives the adult's caseworker
    # no membership, and the child case's task goes to its unit's queue.
    assert all(m.user_id != me.user_id for m in child.members)
    assert _open_task(db, child.id, "task_assess_child").assignee_id is None
    entries = (
        db.execute(select(AuditEntry).where(AuditEntry.action == "case:created_linked"))
        .scalars()
        .all()
    )
    assert [e.case_id for e in entries] == [child.id]
    assert audit.verify_chain(db) is None


def test_undeclared_intake_keys_never_reach_task_data(models: None, db: Session) -> None:
    case = _start(db)
    from engine.queries import task_form_context

    data = task_form_context(db, _open_task(db, case.id, "task_find_children"))["data"]
    assert "junk" not in data and "name" not in data and data["note"] == "x"


def _to_police_step(db: Session, *, consent: bool) -> tuple[Case, OpenTask]:
    case = _start(db)
    task = _open_task(db, case.id, "task_find_children")
    consents = ["CONSENT_POLICE_REPORT"] if consent else []
    actions.complete_task(
        db,
        actor(db, "handlaggare"),
        task_id=task.id,
        data={"child_1": "", "child_2": "", "consents_given": consents},
    )
    db.commit()
    return case, _open_task(db, case.id, "task_report_police")


def test_a_disclosure_without_consent_or_ground_is_refused(models: None, db: Session) -> None:
    _case, task = _to_police_step(db, consent=False)
    with pytest.raises(ValidationFailed) as refused:
        actions.complete_task(
            db,
            actor(db, "handlaggare"),
            task_id=task.id,
            data={"police_outcome": "REPORTED", "legal_ground": "consent"},
        )
    assert "legal_ground" in refused.value.field_errors
    db.rollback()


def test_no_disclosure_needs_no_consent(models: None, db: Session) -> None:
    _case, task = _to_police_step(db, consent=False)
    actions.complete_task(
        db,
        actor(db, "handlaggare"),
        task_id=task.id,
        data={"police_outcome": "NOT_REPORTED", "legal_ground": ""},
    )
    db.commit()


def test_a_legal_ground_allows_the_disclosure(models: None, db: Session) -> None:
    _case, task = _to_police_step(db, consent=False)
    actions.complete_task(
        db,
        actor(db, "handlaggare"),
        task_id=task.id,
        data={"police_outcome": "REPORTED", "legal_ground": "OSL_10_24"},
    )
    db.commit()


def test_recorded_consent_allows_it_until_withdrawn(models: None, db: Session) -> None:
    case, task = _to_police_step(db, consent=True)
    consents = actions.active_consents(db, case.id)
    assert consents == {"CONSENT_POLICE_REPORT"}
    from engine.models import Consent

    consent = db.execute(select(Consent).where(Consent.case_id == case.id)).scalar_one()
    actions.withdraw_consent(db, actor(db, "handlaggare"), consent_id=consent.id)
    db.commit()
    with pytest.raises(ValidationFailed):
        actions.complete_task(
            db,
            actor(db, "handlaggare"),
            task_id=task.id,
            data={"police_outcome": "REPORTED", "legal_ground": "consent"},
        )
    db.rollback()


def test_an_override_needs_a_reason_and_a_supervisor(models: None, db: Session) -> None:
    case, task = _to_police_step(db, consent=False)
    caseworker = actor(db, "handlaggare")
    with pytest.raises(ValidationFailed):
        actions.request_override(db, caseworker, task_id=task.id, reason="  ")
    db.rollback()
    decision = actions.request_override(
        db, caseworker, task_id=task.id, reason="Akut fara för barn i lägenheten"
    )
    db.commit()
    with pytest.raises(Conflict):
        actions.request_override(db, caseworker, task_id=task.id, reason="igen")
    db.rollback()
    with pytest.raises(Forbidden):
        actions.decide(db, caseworker, decision_id=decision.id, approve=True, comment=None)
    db.rollback()
    # Still refused while the override waits.
    with pytest.raises(ValidationFailed):
        actions.complete_task(
            db,
            caseworker,
            task_id=task.id,
            data={"police_outcome": "REPORTED", "legal_ground": "none"},
        )
    db.rollback()
    actions.decide(
        db, actor(db, "arbetsledare"), decision_id=decision.id, approve=True, comment="OK"
    )
    db.commit()
    assert db.get(Decision, decision.id).status == "approved"  # type: ignore[union-attr]
    actions.complete_task(
        db,
        caseworker,
        task_id=task.id,
        data={"police_outcome": "REPORTED", "legal_ground": "none"},
    )
    db.commit()
    actions_seen = {
        e.action
        for e in db.execute(select(AuditEntry).where(AuditEntry.case_id == case.id)).scalars()
    }
    assert {"disclosure:override_requested", "decision:approved"} <= actions_seen


def test_other_units_cannot_touch_consents(models: None, db: Session) -> None:
    case = _start(db)
    with pytest.raises(NotFound):
        actions.record_consent(
            db, actor(db, "handlaggare.barn"), case_id=case.id, purpose="CONSENT_NSP"
        )
    db.rollback()
