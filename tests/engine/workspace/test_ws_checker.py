"""The workspace checker: every rule has a failing model (a small edit of a real ``bpmn/``
file) and the unedited file as the passing one. Problems carry the element id to highlight
and a message in Swedish and English; the checker never raises for a bad model."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest
from ws_kit import procedure

from engine.workspace import CheckResult, check
from engine.workspace.rules import MAX_DEPTH

CONDITION = (
    '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{}</bpmn:conditionExpression>'
)
LEGAL_REF = "MUNICIPAL_ULTIMATE_RESPONSIBILITY,CRIME_VICTIMS"
SCRIPT_TASK = (
    '<bpmn:scriptTask id="task_script" scriptFormat="python">'
    "<bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>"
)
PROCEDURES = ("identification", "child_safeguarding", "housing_notification", "victim_support")


def _edited(process_id: str, old: str, new: str, count: int = 1) -> bytes:
    files = procedure(process_id)
    text = files.bpmn_xml.decode("utf-8")
    assert old in text, f"{old!r} is not in {process_id}.bpmn"
    return text.replace(old, new, count).encode("utf-8")


def _check(process_id: str, xml: bytes | None = None, forms: dict[str, Any] | None = None) -> Any:
    files = procedure(process_id)
    return check(
        xml if xml is not None else files.bpmn_xml, files.forms if forms is None else forms
    )


def _codes(result: CheckResult) -> set[str]:
    return {p.code for p in result.problems}


def _only(result: CheckResult, code: str) -> list[Any]:
    found = [p for p in result.problems if p.code == code]
    assert found, f"expected {code}, got {[str(p) for p in result.problems]}"
    for p in result.problems:
        assert p.message_en and p.message_sv and p.message_en != p.message_sv
    return found


@pytest.mark.parametrize("process_id", PROCEDURES)
def test_every_bundled_procedure_passes(process_id: str) -> None:
    result = _check(process_id)
    assert result.ok, [str(p) for p in result.problems]
    assert result.process_id == process_id
    assert result.as_dict() == {
        "ok": True,
        "process_id": process_id,
        "name": result.name,
        "problems": [],
    }


def test_str_and_bytes_give_the_same_verdict() -> None:
    files = procedure("identification")
    assert check(files.bpmn_xml.decode("utf-8"), files.forms).ok


# --- XML ------------------------------------------------------------------------------------------


def test_malformed_xml_is_a_problem_not_an_exception() -> None:
    files = procedure("identification")
    result = check(files.bpmn_xml[:-200], files.forms)
    assert not result.ok
    _only(result, "xml.malformed")


@pytest.mark.parametrize("junk", [b"", b"   ", b"\x00\xff\xfe", b"not xml at all", b"<a><b></a>"])
def test_junk_is_reported(junk: bytes) -> None:
    result = check(junk, {})
    assert not result.ok and result.problems
    assert result.problems[0].code.startswith("xml.")


def test_too_deep_nesting_is_refused() -> None:
    nested = "<x>" * (MAX_DEPTH + 5) + "</x>" * (MAX_DEPTH + 5)
    xml = _edited(
        "identification",
        "<bpmn:documentation>A6:",
        f"<bpmn:documentation>{nested}A6:",
    )
    result = _check("identification", xml)
    _only(result, "xml.too_deep")


def test_xsd_invalid_attribute_names_the_line() -> None:
    xml = _edited(
        "identification",
        '<bpmn:userTask id="task_assess_indicators"',
        '<bpmn:userTask nam="x" id="task_assess_indicators"',
    )
    problems = _only(_check("identification", xml), "bpmn.xsd")
    assert problems[0].line is not None and "nam" in problems[0].message_en
    assert problems[0].element_id == "task_assess_indicators"  # highlighted in the modeler


def test_spiffworkflow_must_build_the_spec() -> None:
    # a flow into an element that does not exist: XSD-valid, but no spec can be built
    xml = _edited(
        "identification",
        'sourceRef="task_screen_acute" targetRef="gw_children_involved"',
        'sourceRef="task_screen_acute" targetRef="gw_nowhere"',
    )
    result = _check("identification", xml)
    assert not result.ok and result.model is None
    assert _codes(result) & {"bpmn.structure", "bpmn.xsd"}


# --- lanes, forms -------------------------------------------------------------------------------


def test_unknown_lane_is_refused_with_the_lane_element() -> None:
    xml = _edited(
        "identification",
        '<bpmn:lane id="lane_dv_team" name="dv_team">',
        '<bpmn:lane id="lane_dv_team" name="kvinnofrid">',
    )
    problems = _only(_check("identification", xml), "lane.unknown")
    assert problems[0].element_id == "lane_dv_team"
    assert "kvinnofrid" in problems[0].message_sv


def test_missing_form_spec_is_refused_at_the_task() -> None:
    files = procedure("identification")
    forms = {k: v for k, v in files.forms.items() if k != "identification_indicators"}
    problems = _only(check(files.bpmn_xml, forms), "form.missing")
    assert problems[0].element_id == "task_assess_indicators"


def test_invalid_form_spec_is_refused() -> None:
    files = procedure("identification")
    forms = copy.deepcopy(files.forms)
    forms["identification_indicators"]["components"][1]["type"] = "colourpicker"
    problems = _only(check(files.bpmn_xml, forms), "form.invalid")
    assert problems[0].element_id == "task_assess_indicators"
    assert "colourpicker" in problems[0].message_en


def test_decision_outcome_field_must_be_a_field_of_the_form() -> None:
    xml = _edited(
        "identification",
        'name="decisionOutcomeField" value="assessment_outcome"',
        'name="decisionOutcomeField" value="no_such_field"',
    )
    problems = _only(_check("identification", xml), "form.field_missing")
    assert problems[0].element_id == "task_propose_assessment"


def test_user_task_without_form_key_is_refused() -> None:
    xml = _edited(
        "identification",
        '<spiffworkflow:property name="formKey" value="identification_indicators" />',
        "",
    )
    _only(_check("identification", xml), "task.no_form_key")


# --- expressions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "condition",
    [
        "uuid.os.system('id')",
        "().__class__.__mro__",
        "__import__('os').system('id')",
        "children_involved and",  # does not parse
        "[x for x in children]",
    ],
)
def test_condition_outside_the_sandbox_is_refused(condition: str) -> None:
    from xml.sax.saxutils import escape

    xml = _edited(
        "identification",
        CONDITION.format("children_involved"),
        CONDITION.format(escape(condition)),
    )
    problems = _only(_check("identification", xml), "expression.refused")
    assert problems[0].element_id == "flow_children_involved"


def test_script_task_is_refused() -> None:
    xml = _edited(
        "identification",
        '<bpmn:userTask id="task_assess_indicators" name="A4 Indikatorbedömning">',
        SCRIPT_TASK + '<bpmn:userTask id="task_assess_indicators" name="A4 Indikatorbedömning">',
    )
    _only(_check("identification", xml), "element.refused")


# --- timers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ('"P2X"', "timer.invalid"),
        ("P2D", "timer.not_literal"),  # unquoted: an expression naming P2D, not a value
        ("days * 2", "timer.not_literal"),
    ],
)
def test_timer_duration_must_be_quoted_iso_8601(value: str, code: str) -> None:
    xml = _edited(
        "housing_notification", '"P2D"</bpmn:timeDuration>', f"{value}</bpmn:timeDuration>"
    )
    problems = _only(_check("housing_notification", xml), code)
    assert problems[0].element_id == "timer_route_decision_deadline"


def test_timer_cycle_needs_a_repetition_cap() -> None:
    xml = _edited("victim_support", "&quot;R4/P3M&quot;", "&quot;R/P3M&quot;")
    problems = _only(_check("victim_support", xml), "loop.uncapped")
    assert problems[0].element_id == "timer_plan_review"
    xml = _edited("victim_support", "&quot;R4/P3M&quot;", "&quot;R4/P3Q&quot;")
    _only(_check("victim_support", xml), "timer.invalid")


def test_task_deadline_must_be_a_duration() -> None:
    xml = _edited(
        "identification", 'name="deadline" value="P5D"', 'name="deadline" value="five days"'
    )
    _only(_check("identification", xml), "deadline.invalid")


# --- decisions -----------------------------------------------------------------------------------


def test_decision_type_must_be_in_the_catalogue() -> None:
    xml = _edited(
        "identification",
        'name="decisionType" value="D-A6"',
        'name="decisionType" value="D-XX"',
    )
    result = _check("identification", xml)
    problems = _only(result, "decision.unknown_type")
    assert problems[0].element_id == "task_propose_assessment"
    # the approval task now approves a type nobody proposes
    assert _only(result, "approval.unknown_type")[0].element_id == "task_approve_assessment"


def test_decision_outcome_without_a_decision_type_is_refused() -> None:
    xml = _edited(
        "identification", '<spiffworkflow:property name="decisionType" value="D-A6" />', ""
    )
    result = _check("identification", xml)
    problems = _only(result, "decision.no_type")
    assert problems[0].element_id == "task_propose_assessment"


def test_decision_needs_a_legal_reference() -> None:
    xml = _edited(
        "identification",
        f'<spiffworkflow:property name="legalRef" value="{LEGAL_REF}" />',
        "",
    )
    problems = _only(_check("identification", xml), "decision.no_legal_ref")
    assert problems[0].element_id == "task_propose_assessment"


def test_legal_reference_must_be_in_the_catalogue() -> None:
    xml = _edited(
        "identification",
        'value="MUNICIPAL_ULTIMATE_RESPONSIBILITY,CRIME_VICTIMS"',
        'value="MUNICIPAL_ULTIMATE_RESPONSIBILITY,SOL_99_99"',
    )
    problems = _only(_check("identification", xml), "decision.unknown_legal_ref")
    assert "SOL_99_99" in problems[0].message_en


# --- loops ---------------------------------------------------------------------------------------


def test_loop_without_an_approval_task_is_uncapped() -> None:
    # the return loop of D-A6 is capped by its approval task; without it nothing bounds it
    xml = _edited(
        "identification",
        '<spiffworkflow:property name="approvesDecision" value="D-A6" />',
        "",
    )
    problems = _only(_check("identification", xml), "loop.uncapped")
    assert "task_propose_assessment" in problems[0].message_en


def test_loop_marker_needs_a_maximum() -> None:
    xml = _edited(
        "identification",
        "<bpmn:incoming>flow_assessment_merge_to_propose</bpmn:incoming>",
        "<bpmn:incoming>flow_assessment_merge_to_propose</bpmn:incoming>"
        "<bpmn:standardLoopCharacteristics />",
    )
    result = _check("identification", xml)
    assert "loop.uncapped" in _codes(result)
    capped = _edited(
        "identification",
        "<bpmn:incoming>flow_assessment_merge_to_propose</bpmn:incoming>",
        "<bpmn:incoming>flow_assessment_merge_to_propose</bpmn:incoming>"
        '<bpmn:standardLoopCharacteristics loopMaximum="3" />',
    )
    assert "loop.uncapped" not in _codes(_check("identification", capped))


# --- all at once, fast, cached ------------------------------------------------------------------


def test_every_problem_is_reported_at_once() -> None:
    xml = _edited("identification", 'name="dv_team">', 'name="nobody">')
    xml = xml.replace(b'value="D-A6" />', b'value="D-ZZ" />', 1)
    files = procedure("identification")
    forms = {k: v for k, v in files.forms.items() if k != "identification_indicators"}
    codes = _codes(check(xml, forms))
    assert {"lane.unknown", "form.missing", "decision.unknown_type"} <= codes


def test_result_is_json_ready() -> None:
    files = procedure("identification")
    result = check(files.bpmn_xml[:500], files.forms)
    body = json.loads(json.dumps(result.as_dict()))
    assert body["ok"] is False
    assert set(body["problems"][0]) == {"element_id", "code", "message_en", "message_sv", "line"}


def test_checking_a_real_procedure_is_fast() -> None:
    files = procedure("child_safeguarding")
    started = time.perf_counter()
    check(files.bpmn_xml + b" ", files.forms)  # not cached
    assert time.perf_counter() - started < 2.0


def test_timer_date_must_be_an_iso_date_time() -> None:
    old = '<bpmn:timeDuration xsi:type="bpmn:tFormalExpression">"P2D"</bpmn:timeDuration>'
    bad = _edited(
        "housing_notification",
        old,
        '<bpmn:timeDate xsi:type="bpmn:tFormalExpression">"2026-13-01"</bpmn:timeDate>',
    )
    problems = _only(_check("housing_notification", bad), "timer.invalid")
    assert problems[0].element_id == "timer_route_decision_deadline"
    good = _edited(
        "housing_notification",
        old,
        '<bpmn:timeDate xsi:type="bpmn:tFormalExpression">"2026-12-01T10:00:00+01:00"'
        "</bpmn:timeDate>",
    )
    assert not {c for c in _codes(_check("housing_notification", good)) if c.startswith("timer")}


def test_without_the_form_builder_the_shape_of_forms_is_still_checked() -> None:
    from ws_kit import validate_form

    from engine.workspace import set_form_validator

    files = procedure("identification")
    forms = copy.deepcopy(files.forms)
    forms["identification_indicators"] = {"components": "none"}
    set_form_validator(None)
    try:
        problems = _only(check(files.bpmn_xml, forms), "form.invalid")
    finally:
        set_form_validator(validate_form)
    assert {p.element_id for p in problems} == {"task_assess_indicators"}


def test_a_failing_form_validator_is_a_problem_not_a_crash() -> None:
    from ws_kit import validate_form

    from engine.workspace import set_form_validator

    def broken(spec: Any) -> list[str]:
        raise RuntimeError("boom")

    files = procedure("identification")
    set_form_validator(broken)
    try:
        result = check(files.bpmn_xml, files.forms)
    finally:
        set_form_validator(validate_form)
    assert not result.ok
    assert all("could not be checked" in p.message_en for p in result.problems)
