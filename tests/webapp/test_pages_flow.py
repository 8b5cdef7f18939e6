"""The whole identification procedure through the HTML pages only (scenario 07: D-A6 and D-A7
are returned once each), ending with the approved decisions' PDFs in the case."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session
from test_pages_kit import (
    DOCUMENT_LINK,
    STEP_USER,
    complete_step,
    get,
    html,
    in_english,
    my_task_in_case,
    post,
    scenario,
    start_case,
)

from engine.models import Decision, Document, OpenTask
from webapp.security import DOWNLOAD_CSP


def _decide(client: Any, case_number: str, step: dict[str, Any]) -> None:
    task_id = my_task_in_case(client, case_number)
    response = client.get(f"/tasks/{task_id}")
    assert response.status_code == 303
    url = response.headers["Location"]
    assert "/decisions/" in url
    page = get(client, url)
    assert 'name="approve"' in page and 'name="return_"' in page
    if "return" in step:
        refused = post(client, url, page, {"return_": "Return", "comment": ""})
        assert refused.status_code == 422
        body = html(refused)
        assert "error-summary" in body
        assert "Write a comment saying why the decision is returned." in body
        assert 'href="#comment"' in body
        response = post(client, url, body, {"return_": "Return", "comment": step["comment"]})
    else:
        response = post(client, url, page, {"approve": "Approve"})
    assert response.status_code == 303, html(response)[:2000]
    assert "/cases/" in response.headers["Location"]


def test_identification_procedure_through_pages(app: Flask, login_as: Any, db: Session) -> None:
    plan = scenario("07_assessment_returned_once.json")
    clients = {
        name: in_english(login_as(name)) for name in ("handlaggare", "samordnare", "arbetsledare")
    }
    worker = clients["handlaggare"]

    case_id, first_task = start_case(worker, plan["intake"])
    assert first_task, "the caseworker goes straight to the first step"
    case_page = get(worker, f"/cases/{case_id}")
    case_number = re.search(r"ID-\d{4}-\d{5}", case_page).group(0)  # type: ignore[union-attr]
    assert "Testperson Sju" in case_page

    for step in plan["steps"]:
        if "complete" in step:
            client = clients[STEP_USER.get(step["complete"], "handlaggare")]
            task_id = my_task_in_case(client, case_number)
            assert db.get(OpenTask, task_id).bpmn_id == step["complete"]  # type: ignore[union-attr]
            db.rollback()  # SQLite: never hold the write lock while the app works
            response = complete_step(client, task_id, step["data"])
            assert response.status_code == 303, html(response)[:4000]
        else:
            _decide(clients["arbetsledare"], case_number, step)

    decisions = db.execute(select(Decision).where(Decision.case_id == case_id)).scalars().all()
    final = {d.decision_type: d.outcome for d in decisions if d.status == "approved"}
    assert final == plan["expect"]["decisions"]
    assert sorted(d.status for d in decisions if d.decision_type == "D-A6") == [
        "approved",
        "returned",
    ]
    assert (
        db.execute(
            select(OpenTask).where(OpenTask.case_id == case_id, OpenTask.status == "open")
        ).first()
        is None
    )
    approved_a6 = next(
        d.id for d in decisions if d.decision_type == "D-A6" and d.status == "approved"
    )
    db.rollback()

    case_page = get(worker, f"/cases/{case_id}")
    assert "No open steps." in case_page
    document_ids = DOCUMENT_LINK.findall(case_page)
    assert len(document_ids) == 3
    download = worker.get(f"/documents/{document_ids[0]}")
    assert download.status_code == 200
    assert download.data.startswith(b"%PDF")
    assert download.headers["Content-Type"] == "application/pdf"
    assert download.headers["Content-Disposition"].startswith("attachment; filename=")
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.headers["Content-Security-Policy"] == DOWNLOAD_CSP
    assert download.headers["Cache-Control"] == "no-store"
    stored = db.get(Document, int(document_ids[0]))
    assert stored is not None and stored.case_id == case_id
    db.rollback()

    # The returned proposal is listed on the approved decision's page, with its comment.
    page = get(worker, f"/decisions/{approved_a6}")
    assert "Earlier returned proposals" in page
    assert "pröva om det är människohandel" in page
    assert 'name="approve"' not in page
