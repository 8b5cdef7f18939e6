"""Importing files from other tools: Camunda 7 ``camunda:formData`` becomes Lotsen form
specs (and a model that then passes the checker), hostile or foreign files are refused."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from ws_kit import procedure

from engine import workspace
from engine.models.processes import ProcessVersion
from engine.workflow.xmlsafe import MAX_BPMN_BYTES
from tests.conftest import actor

CAMUNDA_MODEL = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs" targetNamespace="x">
  <bpmn:collaboration id="collab">
    <bpmn:participant id="pool" processRef="intake_review" />
  </bpmn:collaboration>
  <bpmn:process id="intake_review" name="Granskning" isExecutable="true">
    <bpmn:laneSet id="lanes">
      <bpmn:lane id="lane_cw" name="caseworker">
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>task_review</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>gw</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>end_ok</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>end_other</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="task_review" name="Granska ärendet" camunda:formKey="Review Form">
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="approved" label="Godkänd?" type="boolean" />
          <camunda:formField id="amount" label="Belopp" type="long">
            <camunda:validation>
              <camunda:constraint name="required" config="true" />
              <camunda:constraint name="min" config="1" />
              <camunda:constraint name="max" config="500" />
            </camunda:validation>
          </camunda:formField>
          <camunda:formField id="colour" label="Färg" type="enum">
            <camunda:value id="red" name="Röd" /><camunda:value id="blue" name="Blå" />
          </camunda:formField>
          <camunda:formField id="Comment-Text" label="Kommentar" type="string">
            <camunda:validation>
              <camunda:constraint name="maxlength" config="200" />
            </camunda:validation>
          </camunda:formField>
          <camunda:formField id="due" label="Datum" type="date" />
        </camunda:formData>
      </bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:exclusiveGateway id="gw" default="f_other">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f_ok</bpmn:outgoing>
      <bpmn:outgoing>f_other</bpmn:outgoing>
    </bpmn:exclusiveGateway>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="task_review" />
    <bpmn:sequenceFlow id="f2" sourceRef="task_review" targetRef="gw" />
    <bpmn:sequenceFlow id="f_ok" sourceRef="gw" targetRef="end_ok">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression"
        xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">${approved}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_other" sourceRef="gw" targetRef="end_other" />
    <bpmn:endEvent id="end_ok"><bpmn:incoming>f_ok</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="end_other"><bpmn:incoming>f_other</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""


def _count(db: Session) -> int:
    return int(db.execute(select(func.count()).select_from(ProcessVersion)).scalar_one())


def test_camunda_form_data_model_becomes_a_clean_draft(db: Session) -> None:
    version, result = workspace.import_file(
        db, actor(db, "processagare"), filename="review.bpmn", data=CAMUNDA_MODEL.encode()
    )
    assert version is not None
    assert result.ok, [str(p) for p in result.problems]
    assert version.process_id == "intake_review" and version.name == "Granskning"
    assert list(version.forms) == ["review_form"]
    spec = version.forms["review_form"]
    assert spec["title"] == {"sv": "Granska ärendet", "en": "Granska ärendet"}
    fields = {c["key"]: c for c in spec["components"]}
    assert fields["approved"]["type"] == "checkbox"
    assert fields["amount"] == {
        "type": "number",
        "key": "amount",
        "label": {"sv": "Belopp", "en": "Belopp"},
        "validate": {"required": True, "min": 1, "max": 500},
    }
    assert fields["colour"]["type"] == "select"
    assert [v["value"] for v in fields["colour"]["values"]] == ["red", "blue"]
    assert fields["comment_text"]["validate"] == {"maxLength": 200}
    assert fields["due"]["type"] == "date"
    assert 'name="formKey" value="review_form"' in version.bpmn_xml
    # the JUEL condition ${approved} became the sandboxed expression `approved`
    assert ">approved</bpmn:conditionExpression>" in version.bpmn_xml


def test_forms_sent_along_are_kept(db: Session) -> None:
    files = procedure("identification")
    version, result = workspace.import_file(
        db,
        actor(db, "processagare"),
        filename="identification.bpmn",
        data=files.bpmn_xml,
        forms=files.forms,
    )
    assert version is not None and result.ok and version.forms == files.forms
    assert version.bpmn_xml.encode() == files.bpmn_xml


@pytest.mark.parametrize(
    ("filename", "data", "code"),
    [
        ("model.exe", b"<x/>", "file.type"),
        ("model.bpmn", b"<html><body>hi</body></html>", "bpmn.not_bpmn"),
        ("model.bpmn", b"\x89PNG\r\n", "xml.malformed"),
        ("model.bpmn", b" " * (MAX_BPMN_BYTES + 1), "xml.too_large"),
        (
            "model.bpmn",
            b'<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">'
            b'<bpmn:collaboration id="c"/></bpmn:definitions>',
            "bpmn.no_process",
        ),
    ],
)
def test_foreign_files_are_refused_and_nothing_is_stored(
    db: Session, filename: str, data: bytes, code: str
) -> None:
    before = _count(db)
    version, result = workspace.import_file(
        db, actor(db, "processagare"), filename=filename, data=data
    )
    assert version is None and [p.code for p in result.problems] == [code]
    assert _count(db) == before


def test_a_latin1_declared_file_is_stored_as_utf8(db: Session) -> None:
    xml = CAMUNDA_MODEL.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"').encode("latin-1")
    version, result = workspace.import_file(
        db, actor(db, "processagare"), filename="latin.bpmn", data=xml
    )
    assert version is not None and result.ok
    assert "Granska ärendet" in version.bpmn_xml


def test_a_draft_saved_as_latin1_bytes_or_text_is_stored_readably(db: Session) -> None:
    owner = actor(db, "processagare")
    latin = CAMUNDA_MODEL.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"')
    for given in (latin.encode("latin-1"), latin):
        version, result = workspace.save_draft(db, owner, bpmn_xml=given, forms={})
        assert "Granska ärendet" in version.bpmn_xml
        assert "UTF-8" in version.bpmn_xml.splitlines()[0]
        assert result.name == "Granskning"
