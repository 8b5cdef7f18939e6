"""Route policies of the process-version JSON API (issue 5) for the route matrix.

Process versions are for process owners only: every other caller gets 403, logged as
``process_version:denied`` naming the version asked for. The object of the version routes is
a draft this module's world hook stores per unit, made so that the checker refuses it (its
only lane is no role): submitting it is refused (422), approving it too (409: not submitted),
rejecting it without a reason (422), a migration to it has no runnable model (409), and its
scenarios are not run (200, nothing changes). So every allowed probe is answered past the
access check and changes nothing.

The diff route takes two ids; ``matrix_kit.url_for_rule`` fills one. This module widens it
so a route with several arguments gets the same object in each (the diff of a version with
itself), and ``tests/webapp/test_api_workspace.py`` tests the diff's denials with two ids.
"""

from __future__ import annotations

from typing import Any

import matrix_kit
from flask import Flask
from matrix_kit import (
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
from engine.models.processes import ProcessVersion

EXTRA_GROUPS.setdefault("process_owners", {"processagare", "processagare2"})
if ProcessVersion not in SNAPSHOT_MODELS:
    SNAPSHOT_MODELS.append(ProcessVersion)

PROBE = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="defs_{pid}">
  <bpmn:process id="{pid}" name="API probe" isExecutable="true">
    <bpmn:laneSet id="lanes_{pid}">
      <bpmn:lane id="lane_nobody" name="no_such_role">
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>task_probe</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>end</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="task_probe" name="Probe">
      <bpmn:extensionElements><spiffworkflow:properties>
        <spiffworkflow:property name="formKey" value="api_probe" />
      </spiffworkflow:properties></bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="task_probe" />
    <bpmn:sequenceFlow id="f2" sourceRef="task_probe" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""
FORMS = {
    "api_probe": {
        "id": "api_probe",
        "title": {"sv": "Prov", "en": "Probe"},
        "components": [{"type": "textfield", "key": "note", "label": {"sv": "A", "en": "A"}}],
    }
}


def _api_probe_draft(app: Flask, db: Session, world: UnitWorld) -> dict[str, Any]:
    pid = f"api_probe_{world.unit}"
    version, result = workspace.save_draft(
        db,
        actor_of(db, "processagare"),
        bpmn_xml=PROBE.format(pid=pid),
        forms=FORMS,
        filename=f"{pid}.bpmn",
    )
    assert not result.ok and version.status == "draft"
    db.commit()
    return {"api_version": version.id}


WORLD_HOOKS.append(_api_probe_draft)

_original_url_for_rule = matrix_kit.url_for_rule


def _url_for_rule(app: Flask, rule: Any, world: UnitWorld | None, kind: str | None) -> str:
    """Like matrix_kit's, but a route with several arguments gets the object in each."""
    if rule.arguments and len(rule.arguments) > 1:
        assert world is not None and kind is not None, rule.rule
        values = {name: world.value(kind) for name in rule.arguments}
        return str(app.url_map.bind("localhost").build(rule.endpoint, values, method=None))
    return _original_url_for_rule(app, rule, world, kind)


matrix_kit.url_for_rule = _url_for_rule

VERSION = {"api_version": "process_owners"}


def _owners(**extra: Any) -> Rule:
    return Rule("login", who="process_owners", **extra)


def _version(**extra: Any) -> Rule:
    return Rule("object", objects=VERSION, **extra)


POLICY.update(
    {
        ("api.list_process_versions", "GET"): _owners(),
        # not a BPMN file: refused after the access check, nothing stored
        ("api.create_process_version", "POST"): _owners(
            body=lambda w: {"filename": "probe.txt", "bpmn": "<x/>"},
            harmless=True,
            allow=frozenset({422}),
        ),
        ("api.get_process_version", "GET"): _version(),
        ("api.diff_process_versions", "GET"): _version(),
        ("api.submit_process_version", "POST"): _version(
            body=lambda w: {}, harmless=True, allow=frozenset({422})
        ),
        ("api.approve_process_version", "POST"): _version(
            body=lambda w: {}, harmless=True, allow=frozenset({409})
        ),
        ("api.reject_process_version", "POST"): _version(
            body=lambda w: {}, harmless=True, allow=frozenset({422})
        ),
        ("api.migrate_to_process_version", "POST"): _version(
            body=lambda w: {}, harmless=True, allow=frozenset({409})
        ),
        ("api.run_process_version_scenarios", "POST"): _version(
            body=lambda w: {}, harmless=True, allow=frozenset({200})
        ),
    }
)
