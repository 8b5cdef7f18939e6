"""The diff between two versions: elements added, removed and changed (name, lane, form key,
condition, timer, decision type, legal reference, deadline) and form fields per form."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sqlalchemy.orm import Session
from ws_kit import edited, procedure

from engine import workspace
from engine.workspace.diff import VersionDiff, diff_models
from tests.conftest import actor


def _changes(result: VersionDiff, element_id: str) -> dict[str, tuple[Any, Any]]:
    found = [c for c in result.changed if c.id == element_id]
    assert found, f"{element_id} not changed; changed: {[c.id for c in result.changed]}"
    return dict(found[0].changes)


def _diff(process_id: str, new_xml: str, new_forms: dict[str, Any] | None = None) -> VersionDiff:
    files = procedure(process_id)
    return diff_models(
        files.bpmn_xml.decode("utf-8"),
        files.forms,
        new_xml,
        files.forms if new_forms is None else new_forms,
    )


def test_identical_versions_have_no_differences() -> None:
    files = procedure("identification")
    result = _diff("identification", files.bpmn_xml.decode("utf-8"))
    assert result.is_empty
    assert result.as_dict()["elements"] == {"added": [], "removed": [], "changed": []}


@pytest.mark.parametrize(
    ("process_id", "old", "new", "element_id", "attribute", "values"),
    [
        (
            "identification",
            'name="A4 Indikatorbedömning"',
            'name="A4 Indikatorer"',
            "task_assess_indicators",
            "name",
            ("A4 Indikatorbedömning", "A4 Indikatorer"),
        ),
        (
            "identification",
            'name="formKey" value="identification_indicators"',
            'name="formKey" value="identification_indicators_v2"',
            "task_assess_indicators",
            "form_key",
            ("identification_indicators", "identification_indicators_v2"),
        ),
        (
            "identification",
            ">children_involved</bpmn:conditionExpression>",
            ">children_involved and True</bpmn:conditionExpression>",
            "flow_children_involved",
            "condition",
            ("children_involved", "children_involved and True"),
        ),
        (
            "housing_notification",
            '"P2D"</bpmn:timeDuration>',
            '"P3D"</bpmn:timeDuration>',
            "timer_route_decision_deadline",
            "timer",
            ({"timeDuration": '"P2D"'}, {"timeDuration": '"P3D"'}),
        ),
        (
            "identification",
            'name="decisionType" value="D-A6"',
            'name="decisionType" value="D-A7"',
            "task_propose_assessment",
            "decision_type",
            ("D-A6", "D-A7"),
        ),
        (
            "identification",
            'value="MUNICIPAL_ULTIMATE_RESPONSIBILITY,CRIME_VICTIMS"',
            'value="CRIME_VICTIMS"',
            "task_propose_assessment",
            "legal_ref",
            ("MUNICIPAL_ULTIMATE_RESPONSIBILITY,CRIME_VICTIMS", "CRIME_VICTIMS"),
        ),
        (
            "identification",
            "<bpmn:documentation>A6: Socialtjänstens bedömning",
            "<bpmn:documentation>A6: Ny instruktion. Socialtjänstens bedömning",
            "task_propose_assessment",
            "documentation",
            (None, None),
        ),
        (
            "identification",
            'name="deadline" value="P5D"',
            'name="deadline" value="P10D"',
            "task_propose_assessment",
            "deadline",
            ("P5D", "P10D"),
        ),
    ],
)
def test_element_attribute_changes(
    process_id: str,
    old: str,
    new: str,
    element_id: str,
    attribute: str,
    values: tuple[Any, Any],
) -> None:
    result = _diff(process_id, edited(process_id, old, new))
    before, after = _changes(result, element_id)[attribute]
    if values == (None, None):  # long texts: only that they differ as edited
        assert old.split(">", 1)[1] in before and new.split(">", 1)[1] in after
    else:
        assert (before, after) == values
    assert not result.added and not result.removed
    assert element_id in result.changed_element_ids


def test_a_task_moved_to_another_lane() -> None:
    xml = edited(
        "identification",
        "<bpmn:flowNodeRef>task_assess_indicators</bpmn:flowNodeRef>",
        "",
    ).replace(
        '<bpmn:lane id="lane_dv_team" name="dv_team">',
        '<bpmn:lane id="lane_dv_team" name="dv_team">'
        "<bpmn:flowNodeRef>task_assess_indicators</bpmn:flowNodeRef>",
    )
    assert _changes(_diff("identification", xml), "task_assess_indicators")["lane"] == (
        "caseworker",
        "dv_team",
    )


def test_elements_added_and_removed() -> None:
    xml = edited(
        "identification",
        '<bpmn:sequenceFlow id="flow_indicators_to_request" sourceRef="task_assess_indicators" '
        'targetRef="task_request_consultation" />',
        '<bpmn:sequenceFlow id="flow_indicators_to_note" sourceRef="task_assess_indicators" '
        'targetRef="task_note" />'
        '<bpmn:manualTask id="task_note" name="Anteckning" />'
        '<bpmn:sequenceFlow id="flow_note_to_request" sourceRef="task_note" '
        'targetRef="task_request_consultation" />',
    )
    result = _diff("identification", xml)
    assert {e.id for e in result.added} == {
        "flow_indicators_to_note",
        "task_note",
        "flow_note_to_request",
    }
    assert [e.id for e in result.removed] == ["flow_indicators_to_request"]
    added = {e["id"]: e for e in result.as_dict()["elements"]["added"]}
    assert added["task_note"] == {"id": "task_note", "type": "manualTask", "name": "Anteckning"}


def test_form_fields_added_removed_changed() -> None:
    files = procedure("identification")
    forms = copy.deepcopy(files.forms)
    spec = forms["identification_indicators"]
    keyed = [c for c in spec["components"] if c.get("key")]
    removed_key = keyed[0]["key"]
    spec["components"] = [c for c in spec["components"] if c.get("key") != removed_key]
    changed = keyed[1]
    changed["label"] = {"sv": "Ny etikett", "en": "New label"}
    spec["components"].append(
        {"type": "textfield", "key": "extra_note", "label": {"sv": "Extra", "en": "Extra"}}
    )
    del forms["decision_approval"]
    forms["brand_new"] = {"id": "brand_new", "components": []}
    result = _diff("identification", files.bpmn_xml.decode("utf-8"), forms)
    by_key = {f.form_key: f for f in result.forms}
    assert by_key["identification_indicators"].status == "changed"
    assert by_key["identification_indicators"].fields_added == ["extra_note"]
    assert by_key["identification_indicators"].fields_removed == [removed_key]
    assert by_key["identification_indicators"].fields_changed == {changed["key"]: ["label"]}
    assert by_key["decision_approval"].status == "removed"
    assert by_key["brand_new"].status == "added"
    assert set(by_key) == {"identification_indicators", "decision_approval", "brand_new"}


def test_diff_of_stored_versions(db: Session) -> None:
    owner = actor(db, "processagare")
    files = procedure("identification")
    published = workspace.list_versions(db, "identification")[0]
    draft, _ = workspace.save_draft(
        db,
        owner,
        bpmn_xml=edited("identification", 'name="A4 Indikatorbedömning"', 'name="A4 Ny"'),
        forms=files.forms,
    )
    result = workspace.diff(db, published.id, draft.id)
    body = result.as_dict()
    assert body["from_version_id"] == published.id and body["to_version_id"] == draft.id
    assert [c["id"] for c in body["elements"]["changed"]] == ["task_assess_indicators"]
    assert body["elements"]["changed"][0]["changes"] == [
        {"attribute": "name", "old": "A4 Indikatorbedömning", "new": "A4 Ny"}
    ]
    assert body["forms"] == []


def test_an_unreadable_side_is_flagged_not_raised(db: Session) -> None:
    owner = actor(db, "processagare")
    broken, _ = workspace.save_draft(db, owner, bpmn_xml="<not-closed", forms={}, filename="x.bpmn")
    published = workspace.list_versions(db, "identification")[0]
    result = workspace.diff(db, published.id, broken.id)
    assert result.unreadable and not result.is_empty
