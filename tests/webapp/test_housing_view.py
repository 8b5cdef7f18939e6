"""The housing company contact's own page (/housing/): only notifications addressed to it,
property facts only, links to its own open steps; never a case record, a person, a linked
case or a PDF, on pages or through the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from engine.db import unit_of_work
from engine.models import Case, CaseLink, Document, OpenTask
from tests.engine.engine_testkit import BPMN_DIR, app_on, factory, run_scenario
from webapp.tokens import issue_token

HOUSING = BPMN_DIR / "housing_notification" / "scenarios"
CHILD_FOUND = HOUSING / "03_consent_based_child_found.json"
#: Words of the scenario that concern persons or internal reasoning, never property facts.
PERSONAL = (
    "Barn har påträffats",
    "Avtalsparten",
    "persons_found",
    "children_count",
    "trapphusrond",
)


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    yield from app_on(database_url, tmp_path)


def _until(tmp_path: Path, source: Path, bpmn_id: str) -> Path:
    """The scenario cut just before ``bpmn_id`` is completed."""
    scenario = json.loads(source.read_text(encoding="utf-8"))
    steps = scenario["steps"]
    cut = next(i for i, s in enumerate(steps) if "advance" in s or s.get("complete") == bpmn_id)
    scenario["steps"] = steps[:cut]
    target = tmp_path / source.parent.parent.name / "scenarios" / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(scenario), encoding="utf-8")
    return target


def _linked_numbers(app: Flask, case_id: int) -> list[str]:
    with unit_of_work(factory(app)) as s:
        rows = s.execute(
            select(Case.number)
            .join(CaseLink, CaseLink.to_case_id == Case.id)
            .where(CaseLink.from_case_id == case_id)
        ).scalars()
        return list(rows)


def _assert_no_personal_data(text: str, linked: list[str]) -> None:
    for word in (*PERSONAL, *linked):
        assert word not in text, word


def test_contact_sees_its_open_notification_and_its_step(
    app: Flask, login_as: Any, tmp_path: Path
) -> None:
    case_id = run_scenario(app, _until(tmp_path, CHILD_FOUND, "task_acknowledge_notification"))
    linked = _linked_numbers(app, case_id)
    assert linked, "the scenario splits the child out into a linked case"
    with unit_of_work(factory(app)) as s:
        task = s.execute(
            select(OpenTask).where(
                OpenTask.case_id == case_id, OpenTask.bpmn_id == "task_acknowledge_notification"
            )
        ).scalar_one()
        task_id = task.id
    huge = login_as("huge")
    page = huge.get("/housing/")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "Exempelvägen 12" in body and "HUGE-4711-0312" in body and "1102" in body
    assert f"/tasks/{task_id}" in body
    _assert_no_personal_data(body, linked)
    task_page = huge.get(f"/tasks/{task_id}").get_data(as_text=True)
    _assert_no_personal_data(task_page, linked)
    with app.app_context():
        token = issue_token(app.extensions["lotsen"], "huge")
    headers = {"Authorization": f"Bearer {token}"}
    api_task = app.test_client().get(f"/api/v1/tasks/{task_id}", headers=headers)
    assert api_task.status_code == 200
    _assert_no_personal_data(api_task.get_data(as_text=True), linked)


def test_returned_status_is_shown(app: Flask, login_as: Any) -> None:
    case_id = run_scenario(app, CHILD_FOUND)
    body = login_as("huge").get("/housing/").get_data(as_text=True)
    assert "2026-04-08" in body  # the status date the contact returned
    assert "2026-03-06" in body  # acknowledged on
    _assert_no_personal_data(body, _linked_numbers(app, case_id))


def test_staff_have_no_housing_inbox(app: Flask, login_as: Any) -> None:
    run_scenario(app, CHILD_FOUND)
    for username in ("handlaggare", "samordnare", "enhetschef"):
        assert login_as(username).get("/housing/").status_code == 403


def test_contact_gets_no_case_record_document_or_api_data(app: Flask, login_as: Any) -> None:
    case_id = run_scenario(app, CHILD_FOUND)
    linked = _linked_numbers(app, case_id)
    with unit_of_work(factory(app)) as s:
        samordnare_case = s.get(Case, case_id)
        assert samordnare_case is not None
        document_ids = list(s.execute(select(Document.id)).scalars())
    huge = login_as("huge")
    for url in (
        f"/cases/{case_id}",
        f"/documents/cases/{case_id}",
        *(f"/cases/{c}" for c in range(case_id + 1, case_id + 1 + len(linked))),
    ):
        assert huge.get(url).status_code == 404, url
    for doc_id in document_ids or [1]:
        assert huge.get(f"/documents/{doc_id}").status_code == 404
        assert huge.get(f"/documents/{doc_id}/download").status_code == 404
    with app.app_context():
        token = issue_token(app.extensions["lotsen"], "huge")
    api = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert api.get(f"/api/v1/cases/{case_id}", headers=headers).status_code in (403, 404)
    listing = api.get("/api/v1/tasks", headers=headers)
    assert listing.status_code == 200
    _assert_no_personal_data(listing.get_data(as_text=True), linked)


def test_housing_contact_sees_only_notifications_addressed_to_it(
    app: Flask, login_as: Any, tmp_path: Path
) -> None:
    # a housing case that never reached the letter (police only): nothing for the contact
    run_scenario(app, HOUSING / "02_police_only_adult_found.json")
    body = login_as("huge").get("/housing/").get_data(as_text=True)
    with unit_of_work(factory(app)) as s:
        address = s.execute(select(Case.number)).scalars().first()
    assert address is not None and address not in body
