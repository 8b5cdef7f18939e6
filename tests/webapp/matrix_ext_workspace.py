"""Route policies of the process-owner workspace pages (issue 5).

The workspace is for process owners only: everyone else gets 403 (logged naming the version
asked for). The object of the version routes is a draft the world hook stores per unit, made
so that the checker refuses it (a lane that is no role): submitting it is refused, approving
and rejecting it too (it is not submitted), so every allowed probe is answered past the
access check and changes nothing. The case diagram follows the case: its readers only.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from matrix_kit import (
    CASE_OBJECTS,
    EXTRA_GROUPS,
    POLICY,
    SNAPSHOT_MODELS,
    WORLD_HOOKS,
    Rule,
    UnitWorld,
    actor_of,
)
from sqlalchemy.orm import Session

from engine import workspace
from engine.models import ProcessVersion

EXTRA_GROUPS["process_owners"] = {"processagare", "processagare2"}
SNAPSHOT_MODELS.append(ProcessVersion)

#: A small model whose only lane is not a role: stored as a draft, refused by the checker.
PROBE_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
  id="definitions_{pid}" targetNamespace="https://lotsen.huddinge.se/bpmn/{pid}">
  <bpmn:process id="{pid}" name="Matrix probe" isExecutable="true">
    <bpmn:laneSet id="laneset_{pid}">
      <bpmn:lane id="lane_unknown" name="no_such_role">
        <bpmn:flowNodeRef>start_{pid}</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>task_do_probe</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>end_{pid}</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start_{pid}"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="task_do_probe" name="P1 Probe">
      <bpmn:extensionElements><spiffworkflow:properties>
        <spiffworkflow:property name="formKey" value="probe_form" />
      </spiffworkflow:properties></bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end_{pid}"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start_{pid}" targetRef="task_do_probe" />
    <bpmn:sequenceFlow id="f2" sourceRef="task_do_probe" targetRef="end_{pid}" />
  </bpmn:process>
</bpmn:definitions>
"""
PROBE_FORMS = {
    "probe_form": {
        "id": "probe_form",
        "title": {"sv": "Prov", "en": "Probe"},
        "components": [
            {"type": "textfield", "key": "note", "label": {"sv": "Anteckning", "en": "Note"}}
        ],
    }
}


def _probe_draft(app: Flask, db: Session, world: UnitWorld) -> dict[str, Any]:
    """A draft (refused by the checker) per unit: the object of the version routes."""
    pid = f"matrix_probe_{world.unit}"
    version, result = workspace.save_draft(
        db,
        actor_of(db, "processagare"),
        bpmn_xml=PROBE_BPMN.format(pid=pid),
        forms=PROBE_FORMS,
        filename=f"{pid}.bpmn",
    )
    assert not result.ok and version.status == "draft"
    db.commit()
    return {"ws_version": version.id}


WORLD_HOOKS.append(_probe_draft)

VERSION = {"ws_version": "process_owners"}


def _owners(**extra: Any) -> Rule:
    return Rule("login", who="process_owners", **extra)


def _version(**extra: Any) -> Rule:
    return Rule("object", objects=VERSION, **extra)


POLICY.update(
    {
        ("workspace.index", "GET"): _owners(),
        ("workspace.upload", "GET"): _owners(),
        ("workspace.diff", "GET"): _owners(),
        # an empty post: refused after the access check (missing XML, no spec, no file)
        ("workspace.save", "POST"): _owners(body=lambda w: {}, harmless=True),
        ("workspace.preview_form", "POST"): _owners(
            body=lambda w: {"spec": ""}, harmless=True, allow=frozenset({422})
        ),
        ("workspace.upload", "POST"): _owners(
            body=lambda w: {}, harmless=True, allow=frozenset({422})
        ),
        ("workspace.version", "GET"): _version(),
        ("workspace.model", "GET"): _version(),
        ("workspace.modeler", "GET"): _version(),
        ("workspace.download", "GET"): _version(),
        ("workspace.diagram", "GET"): _version(),
        ("workspace.migration", "GET"): _version(),
        # the probe draft is refused by the checker (submit) and is not submitted (approve,
        # reject): the owners' probes come back to the version page with the refusal
        ("workspace.submit", "POST"): _version(body=lambda w: {}, harmless=True),
        ("workspace.approve", "POST"): _version(body=lambda w: {}, harmless=True),
        ("workspace.reject", "POST"): _version(
            body=lambda w: {"reason": ""}, harmless=True, allow=frozenset({422})
        ),
        ("workspace.migrate", "POST"): _version(body=lambda w: {}, harmless=True),
        ("workspace.scenarios", "POST"): _version(body=lambda w: {}, harmless=True),
        # the case's own diagram: whoever may read the case (engine.access.access_case)
        ("workspace.case_diagram", "GET"): Rule("object", objects=CASE_OBJECTS),
    }
)
