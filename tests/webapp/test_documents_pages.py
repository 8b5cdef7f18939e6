"""The outgoing-documents pages: produce a document from a case, download it (audited, not
cached), the unit manager's approval of documents about a protected person, refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pypdf
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from engine.db import unit_of_work
from engine.models import AuditEntry, Document
from tests.conftest import csrf_token_from
from tests.engine.engine_testkit import BPMN_DIR, app_on, factory, run_scenario

IDENT = BPMN_DIR / "identification" / "scenarios"
CHILD = BPMN_DIR / "child_safeguarding" / "scenarios"
REPORTED = IDENT / "01_presumed_trafficking_begging_reported.json"
INJECTION = "{{7*7}} <img src=http://169.254.169.254/>"


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    yield from app_on(database_url, tmp_path)


def _variant(tmp_path: Path, source: Path, *, protected: bool) -> Path:
    scenario = json.loads(source.read_text(encoding="utf-8"))
    if protected:
        scenario["intake"]["protected_identity_type"] = "sekretessmarkering"
    scenario["intake"]["contact_place_details"] = "Hemliga gatan 7"
    for step in scenario["steps"]:
        if step.get("complete") == "task_propose_police_report":
            step["data"]["police_reasons"] = INJECTION
    target = tmp_path / source.parent.parent.name / "scenarios" / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(scenario), encoding="utf-8")
    return target


def _text(pdf: bytes) -> str:
    reader = pypdf.PdfReader(BytesIO(pdf))
    return " ".join(" ".join(page.extract_text().split()) for page in reader.pages)


def _generate(client: FlaskClient, case_id: int, kind: str) -> Any:
    page = client.get(f"/documents/cases/{case_id}")
    assert page.status_code == 200
    token = csrf_token_from(page.get_data(as_text=True))
    return client.post(f"/documents/cases/{case_id}", data={"kind": kind, "csrf_token": token})


def _documents(app: Flask, case_id: int) -> list[Document]:
    with unit_of_work(factory(app)) as s:
        rows = s.execute(select(Document).where(Document.case_id == case_id)).scalars().all()
        s.expunge_all()
        return list(rows)


def test_produce_and_download_a_police_report(app: Flask, login_as: Any, tmp_path: Path) -> None:
    case_id = run_scenario(app, _variant(tmp_path, REPORTED, protected=False))
    worker = login_as("handlaggare")
    page = worker.get(f"/documents/cases/{case_id}").get_data(as_text=True)
    assert "Polisanmälan" in page and page.count("<h1") == 1
    response = _generate(worker, case_id, "police_report")
    assert response.status_code == 303
    (doc,) = _documents(app, case_id)
    assert doc.kind == "police_report" and doc.status == "final"
    download = worker.get(f"/documents/{doc.id}/download")
    assert download.status_code == 200
    assert download.headers["Cache-Control"] == "no-store"
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    text = _text(download.data)
    assert doc.title.split(" – ")[1] in text
    assert "{{7*7}}" in text and "<img src=http://169.254.169.254/>" in text
    assert "Hemliga gatan" not in text
    assert "OSL 10 kap. 24 §" in text
    with unit_of_work(factory(app)) as s:
        actions = set(
            s.execute(select(AuditEntry.action).where(AuditEntry.case_id == case_id)).scalars()
        )
    assert {"document:created", "document:downloaded"} <= actions


def test_protected_identity_document_waits_for_the_unit_manager(
    app: Flask, login_as: Any, tmp_path: Path
) -> None:
    case_id = run_scenario(app, _variant(tmp_path, REPORTED, protected=True))
    worker = login_as("handlaggare")
    assert _generate(worker, case_id, "police_report").status_code == 303
    (doc,) = _documents(app, case_id)
    assert doc.status == "awaiting_approval"
    assert worker.get(f"/documents/{doc.id}/download").status_code == 403
    page = worker.get(f"/documents/cases/{case_id}").get_data(as_text=True)
    assert f"/documents/{doc.id}/download" not in page
    assert f"/documents/{doc.id}/approve" not in page
    # the supervisor approved decisions here (team member) but may not release documents
    supervisor = login_as("arbetsledare")
    sup_page = supervisor.get(f"/documents/cases/{case_id}").get_data(as_text=True)
    assert f"/documents/{doc.id}/approve" not in sup_page
    sup_token = csrf_token_from(sup_page)
    refused = supervisor.post(f"/documents/{doc.id}/approve", data={"csrf_token": sup_token})
    assert refused.status_code == 403
    assert supervisor.get(f"/documents/{doc.id}/download").status_code == 403
    # a caseworker of the other unit does not see the protected case at all
    assert login_as("handlaggare.barn").get(f"/documents/cases/{case_id}").status_code == 404
    chief = login_as("enhetschef")
    assert f"/documents/cases/{case_id}" in chief.get("/documents/pending").get_data(as_text=True)
    preview = chief.get(f"/documents/{doc.id}/download")
    assert preview.status_code == 200 and "UTKAST" in _text(preview.data)
    page = chief.get(f"/documents/cases/{case_id}").get_data(as_text=True)
    token = csrf_token_from(page)
    assert chief.post(f"/documents/{doc.id}/approve", data={}).status_code == 400  # no token
    approved = chief.post(f"/documents/{doc.id}/approve", data={"csrf_token": token})
    assert approved.status_code == 303
    final = worker.get(f"/documents/{doc.id}/download")
    assert final.status_code == 200
    text = _text(final.data)
    assert "UTKAST" not in text and "Godkänt av enhetschef" in text
    assert "Skyddad identitet" in text and "Hemliga gatan" not in text
    again = chief.post(f"/documents/{doc.id}/approve", data={"csrf_token": token})
    assert again.status_code == 409


def test_guardian_notice_is_refused_when_a_guardian_is_suspected(app: Flask, login_as: Any) -> None:
    case_id = run_scenario(app, CHILD / "03_lvu6_committee_guardian_suspect_apply_care.json")
    chief = login_as("enhetschef")  # oversees the child unit's unprotected cases
    page = chief.get(f"/documents/cases/{case_id}").get_data(as_text=True)
    assert 'value="guardian_notice"' not in page
    response = _generate(chief, case_id, "guardian_notice")
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "error-summary" in body
    assert _documents(app, case_id) == []
    assert _generate(chief, case_id, "lvu6_decision").status_code == 303
    (doc,) = _documents(app, case_id)
    text = _text(chief.get(f"/documents/{doc.id}/download").data)
    assert "LVU" in text and "underställ" in text.lower()


@pytest.mark.parametrize("kind", ["", "nonsense", "../decision", "housing_notice"])
def test_bad_kinds_are_422_not_500(app: Flask, login_as: Any, kind: str) -> None:
    case_id = run_scenario(app, REPORTED)
    response = _generate(login_as("handlaggare"), case_id, kind)
    assert response.status_code == 422
    assert _documents(app, case_id) == []


def test_housing_contact_and_other_units_get_no_documents(app: Flask, login_as: Any) -> None:
    case_id = run_scenario(app, REPORTED)
    worker = login_as("handlaggare")
    assert _generate(worker, case_id, "police_report").status_code == 303
    (doc,) = _documents(app, case_id)
    for username in ("huge", "handlaggare.barn"):
        client = login_as(username)
        assert client.get(f"/documents/cases/{case_id}").status_code == 404
        assert client.get(f"/documents/{doc.id}/download").status_code == 404
        assert client.get(f"/documents/{doc.id}").status_code == 404


def test_case_page_links_to_its_documents(app: Flask, login_as: Any) -> None:
    case_id = run_scenario(app, REPORTED)
    page = login_as("handlaggare").get(f"/cases/{case_id}").get_data(as_text=True)
    assert f"/documents/cases/{case_id}" in page
