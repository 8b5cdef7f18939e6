"""load_process_model: a valid model passes; each README rule is enforced with element ids."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.workflow.problems import ModelError, Problem
from engine.workflow.specs import (
    ProcessModel,
    TaskMeta,
    lane_roles,
    load_process_model,
    load_roles,
)

REPO = Path(__file__).resolve().parents[3]


def problems_of(xml: bytes, **kwargs: object) -> list[Problem]:
    with pytest.raises(ModelError) as info:
        load_process_model(xml, **kwargs)  # type: ignore[arg-type]
    assert info.value.problems, "ModelError without problems"
    for p in info.value.problems:
        assert p.message_en and p.message_sv
    return info.value.problems


def ids(problems: list[Problem]) -> set[str | None]:
    return {p.element_id for p in problems}


def test_valid_model_passes(kit: SimpleNamespace) -> None:
    model = load_process_model(kit.branching().xml(), "demo.bpmn", known_roles=kit.ROLES)
    assert isinstance(model, ProcessModel)
    assert model.process_id == "demo"
    assert model.name == "Demo"
    assert model.start_form_key == "intake"
    assert set(model.tasks) == {"task_register", "task_approve", "task_escalate", "task_close"}
    assert model.lanes == frozenset({"caseworker", "supervisor"})
    assert model.form_keys == {
        "intake",
        "form_task_register",
        "form_task_approve",
        "form_task_escalate",
        "form_task_close",
    }
    approve = model.tasks["task_approve"]
    assert approve.lane == "supervisor"
    assert approve.name == "A2 Attestera"
    assert approve.is_user_task
    assert approve.approves_decision == "D-A6"
    assert approve.approval_variable == "approved"
    assert approve.deadline == "P14D"
    assert approve.deadline_from == "task"
    assert not approve.deadline_working_days
    assert model.tasks["task_register"].lane == "caseworker"
    assert '"spec"' in model.spec_json


def test_task_meta_properties() -> None:
    meta = TaskMeta(
        bpmn_id="task_propose_assessment",
        name="A6 Bedömning",
        lane="caseworker",
        is_user_task=True,
        properties={
            "formKey": "assessment",
            "decisionType": "D-A6",
            "decisionOutcomeField": "outcome",
            "decisionReasonsField": "reasons",
            "legalRef": "sol_4_1, brb_4_1a ,,",
            "appealable": "TRUE",
            "deadline": "P5D",
            "deadlineWorkingDays": "true",
            "deadlineFrom": "case",
        },
    )
    assert meta.form_key == "assessment"
    assert meta.decision_type == "D-A6"
    assert meta.decision_outcome_field == "outcome"
    assert meta.decision_reasons_field == "reasons"
    assert meta.legal_refs == ("sol_4_1", "brb_4_1a")
    assert meta.appealable
    assert meta.deadline_working_days
    assert meta.deadline_from == "case"
    assert meta.approves_decision is None and meta.approval_variable is None
    empty = TaskMeta("t", "t", None, True, {})
    assert empty.legal_refs == () and not empty.appealable and empty.deadline_from == "task"


def test_roles_file() -> None:
    roles = load_roles(REPO / "bpmn" / "roles.toml")
    assert roles["caseworker"]["sv"] == "Socialsekreterare"
    lanes = lane_roles(roles)
    assert "caseworker" in lanes and "supervisor" in lanes
    assert "admin" not in lanes and "auditor" not in lanes


def test_unknown_lane(kit: SimpleNamespace) -> None:
    m = kit.branching()
    m.lanes = {"caseworker": m.lanes["caseworker"], "hackers": m.lanes["supervisor"]}
    found = problems_of(m.xml(), known_roles=kit.ROLES)
    lane_problems = [p for p in found if "hackers" in p.message_en]
    assert lane_problems and lane_problems[0].element_id == "lane_1"
    assert lane_problems[0].line is not None
    # Without known roles the lane names are not judged.
    load_process_model(m.xml())


def test_user_task_outside_lanes(kit: SimpleNamespace) -> None:
    m = kit.branching()
    m.lanes["supervisor"].remove("task_escalate")
    assert "task_escalate" in ids(problems_of(m.xml(), known_roles=kit.ROLES))


def test_missing_form_key(kit: SimpleNamespace) -> None:
    m = kit.branching()
    m.node("task_close", kit.user_task("task_close", "A4 Avsluta", formKey=""))
    found = problems_of(m.xml(), known_roles=kit.ROLES)
    assert [p.element_id for p in found] == ["task_close"]
    assert "formKey" in found[0].message_en


def test_script_and_service_tasks_refused(kit: SimpleNamespace) -> None:
    m = kit.linear(2)
    m.node(
        "task_do_2",
        '<bpmn:scriptTask id="task_do_2">{links}<bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>',
    )
    m.node("svc", '<bpmn:serviceTask id="svc"></bpmn:serviceTask>')
    found = problems_of(m.xml(), known_roles=kit.ROLES)
    assert {"task_do_2", "svc"} <= ids(found)
    assert any("script" in p.message_en for p in found)
    assert any("service" in p.message_en for p in found)


def test_pre_and_post_scripts_refused(kit: SimpleNamespace) -> None:
    m = kit.linear(1)
    m.node(
        "task_do_1",
        '<bpmn:userTask id="task_do_1" name="x"><bpmn:extensionElements>'
        '<spiffworkflow:properties><spiffworkflow:property name="formKey" value="f"/>'
        "</spiffworkflow:properties>"
        "<spiffworkflow:preScript>a = 1</spiffworkflow:preScript>"
        "<spiffworkflow:postScript>b = 2</spiffworkflow:postScript>"
        "</bpmn:extensionElements>{links}</bpmn:userTask>",
    )
    found = problems_of(m.xml(), known_roles=kit.ROLES)
    assert ids(found) == {"task_do_1"}
    assert len(found) == 2


def test_unsafe_condition(kit: SimpleNamespace) -> None:
    found = problems_of(
        kit.branching("__import__('os').system('id') == 0").xml(), known_roles=kit.ROLES
    )
    assert ids(found) == {"f_big"}
    assert "not allowed" in found[0].message_en
    assert found[0].line is not None


def test_unsafe_and_unquoted_timer(kit: SimpleNamespace) -> None:
    m = kit.branching()
    m.node("timer", kit.timer_boundary("timer", "task_approve", "().__class__"))
    assert ids(problems_of(m.xml(), known_roles=kit.ROLES)) == {"timer"}


def test_gateway_without_default(kit: SimpleNamespace) -> None:
    m = kit.branching()
    m.node("gw", kit.gateway("gw", default=None))
    assert "gw" in ids(problems_of(m.xml(), known_roles=kit.ROLES))


def test_decision_and_approval_properties(kit: SimpleNamespace) -> None:
    m = kit.branching()
    m.node("task_register", kit.user_task("task_register", "A1", decisionType="D-A6"))
    m.node("task_approve", kit.user_task("task_approve", "A2", approvesDecision="D-A6"))
    m.node(
        "task_close",
        kit.user_task("task_close", "A4", deadline="5 days", deadlineFrom="moon", appealable="ja"),
    )
    found = problems_of(m.xml(), known_roles=kit.ROLES)
    by_id: dict[str | None, list[str]] = {}
    for p in found:
        by_id.setdefault(p.element_id, []).append(p.message_en)
    assert any("decisionOutcomeField" in msg for msg in by_id["task_register"])
    assert any("approvalVariable" in msg for msg in by_id["task_approve"])
    assert len(by_id["task_close"]) == 3


def test_all_problems_collected_at_once(kit: SimpleNamespace) -> None:
    m = kit.branching("amount.real > 1")
    m.node("task_close", kit.user_task("task_close", "A4", formKey=""))
    m.lanes = {"nobody": m.lanes["caseworker"], "supervisor": m.lanes["supervisor"]}
    found = problems_of(m.xml(), known_roles=kit.ROLES)
    assert {"f_big", "task_close", "lane_0"} <= ids(found)


def test_bad_xml_and_doctype(kit: SimpleNamespace) -> None:
    found = problems_of(b"<bpmn:definitions><oops></bpmn:definitions>")
    assert "well-formed" in found[0].message_en
    xml = (
        kit.linear(1)
        .xml()
        .replace(b"<bpmn:definitions", b'<!DOCTYPE x [<!ENTITY e "e">]>\n<bpmn:definitions', 1)
    )
    found = problems_of(xml)
    assert "DOCTYPE" in found[0].message_en


def test_xsd_errors_have_lines(kit: SimpleNamespace) -> None:
    xml = (
        kit.linear(1)
        .xml()
        .replace(b'<bpmn:userTask id="task_do_1" name=', b'<bpmn:userTask id="task_do_1" nam=')
    )
    found = problems_of(xml)
    assert any("nam" in p.message_en and p.line for p in found)


def test_spiff_semantic_error_has_element_id(kit: SimpleNamespace) -> None:
    m = kit.linear(1)
    m.flow("f_extra", "task_do_1", "start")  # a user task with two outgoing flows
    found = problems_of(m.xml())
    assert found[0].element_id == "task_do_1"


def test_process_selection(kit: SimpleNamespace) -> None:
    xml = kit.linear(1).xml()
    assert load_process_model(xml, process_id="demo").process_id == "demo"
    assert "nope" in ids(problems_of(xml, process_id="nope"))
    two = xml.replace(
        b"</bpmn:definitions>",
        b'<bpmn:process id="other" isExecutable="true"><bpmn:startEvent id="s2"/></bpmn:process>'
        b"</bpmn:definitions>",
    )
    assert "several" in problems_of(two)[0].message_en
    assert load_process_model(two, process_id="demo").process_id == "demo"


def test_model_error_str_lists_problems() -> None:
    err = ModelError([Problem("a", "first", "första", 3), Problem(None, "second", "andra")])
    text = str(err)
    assert "first" in text and "second" in text and "line 3" in text
