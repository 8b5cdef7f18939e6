"""Helpers for the page tests (no tests here): scenario data as form posts, and page parsing."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict
from werkzeug.test import TestResponse

SCENARIOS = Path(__file__).resolve().parents[2] / "bpmn" / "identification" / "scenarios"
TASK_LINK = re.compile(r'href="/tasks/([0-9a-fA-F-]{8,36})"')
CASE_LINK = re.compile(r'href="/cases/(\d+)"')
DECISION_LINK = re.compile(r'href="/decisions/(\d+)"')
DOCUMENT_LINK = re.compile(r'href="/documents/(\d+)"')
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')

#: Who does which step of the identification procedure in the demo data.
STEP_USER = {"task_record_consultation": "samordnare"}


def scenario(name: str) -> dict[str, Any]:
    """A scenario file of the identification procedure."""
    plan: dict[str, Any] = json.loads((SCENARIOS / name).read_text(encoding="utf-8"))
    return plan


def as_form(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Task data as a browser would post it: lists repeated, booleans "y" or absent."""
    items: list[tuple[str, str]] = []
    for key, value in data.items():
        if value is None or value is False:
            continue
        if value is True:
            items.append((key, "y"))
        elif isinstance(value, list):
            items.extend((key, str(item)) for item in value)
        else:
            items.append((key, str(value)))
    return items


def html(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def get(client: FlaskClient, url: str, status: int = 200) -> str:
    """GET a page and check its status."""
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code, html(response)[:2000])
    return html(response)


def hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', page) or re.search(
        rf'value="([^"]*)"[^>]*name="{name}"', page
    )
    assert match, f"no hidden {name} on the page"
    return match.group(1)


def csrf(page: str) -> str:
    match = CSRF.search(page)
    assert match, "no CSRF token on the page"
    return match.group(1)


def post(
    client: FlaskClient, url: str, page: str, items: list[tuple[str, str]] | dict[str, str]
) -> TestResponse:
    """POST a form found on ``page`` (its CSRF token included)."""
    pairs = list(items.items()) if isinstance(items, dict) else list(items)
    return client.post(url, data=MultiDict([("csrf_token", csrf(page)), *pairs]))


def task_form_fields(page: str) -> list[tuple[str, str]]:
    """The hidden version and submission id of a task page's form."""
    return [("version", hidden(page, "version")), ("submission_id", hidden(page, "submission_id"))]


def start_case(client: FlaskClient, intake: dict[str, Any]) -> tuple[int, str]:
    """Register a case through /cases/new; return (case id, first task id or "")."""
    page = get(client, "/cases/new")
    response = post(client, "/cases/new", page, as_form(intake))
    assert response.status_code == 303, html(response)[:3000]
    location = response.headers["Location"]
    if "/tasks/" in location:
        task_id = location.rsplit("/", 1)[1]
        case_id = int(CASE_LINK.search(get(client, location)).group(1))  # type: ignore[union-attr]
        return case_id, task_id
    return int(location.rsplit("/", 1)[1]), ""


def my_task_in_case(client: FlaskClient, case_number: str) -> str:
    """The id of the one task of ``case_number`` in this user's inbox."""
    page = get(client, "/")
    for row in page.split("<tr")[1:]:
        if case_number in row:
            match = TASK_LINK.search(row)
            if match:
                return match.group(1)
    raise AssertionError(f"no task of {case_number} in the inbox")


def complete_step(client: FlaskClient, task_id: str, data: dict[str, Any]) -> TestResponse:
    """Open a task page and complete it with ``data``; return the response."""
    page = get(client, f"/tasks/{task_id}")
    items = [*task_form_fields(page), ("action", "complete"), *as_form(data)]
    return post(client, f"/tasks/{task_id}", page, items)


def arrange_case(
    app: Any,
    db: Any,
    *,
    until: str = "D-A6",
    approve: bool = False,
    intake: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A case of scenario 01 run through the engine (fast) up to the proposal of ``until``.

    Returns {"case_id", "decision_id", "document_id"}; with ``approve`` the decision is approved
    by the supervisor and its PDF filed. Commits, so the app sees it.
    """
    from sqlalchemy import select

    from engine import actions
    from engine.models import Decision, Document, OpenTask
    from engine.processes import latest_published, model_for
    from forms import load_form_spec
    from tests.conftest import actor, unit_id
    from webapp.services import decide_with_document

    plan = scenario("01_presumed_trafficking_begging_reported.json")
    version = latest_published(db, "identification")
    model = model_for(version)
    start_form = load_form_spec(version.forms[model.start_form_key or ""])
    caseworker = actor(db, "handlaggare")
    case = actions.start_case(
        db,
        caseworker,
        procedure="identification",
        unit_id=unit_id(db, "vuxenenheten"),
        intake={**start_form.empty_data(), **(intake or plan["intake"])},
        subject_fields=start_form.subject_fields,
    )
    result: dict[str, Any] = {"case_id": case.id, "decision_id": None, "document_id": None}
    for step in plan["steps"]:
        if "complete" not in step:
            break
        task = db.execute(
            select(OpenTask).where(
                OpenTask.case_id == case.id,
                OpenTask.status == "open",
                OpenTask.bpmn_id == step["complete"],
            )
        ).scalar_one()
        spec = load_form_spec(version.forms[task.form_key])
        who = actor(db, STEP_USER.get(step["complete"], "handlaggare"))
        outcome = actions.complete_task(
            db, who, task_id=task.id, data={**spec.empty_data(), **step["data"]}
        )
        if outcome.decision_id is not None:
            result["decision_id"] = outcome.decision_id
            decision = db.get(Decision, outcome.decision_id)
            if decision.decision_type == until:
                break
    if approve:
        with app.app_context():
            decide_with_document(
                db, actor(db, "arbetsledare"), result["decision_id"], approve=True, comment=None
            )
        result["document_id"] = db.execute(
            select(Document.id).where(Document.decision_id == result["decision_id"])
        ).scalar_one()
    db.commit()
    return result


def in_english(client: FlaskClient) -> FlaskClient:
    """Switch a logged-in client to English, so tests can assert on the msgids."""
    page = get(client, "/")
    response = post(client, "/language", page, {"lang": "en", "next": "/"})
    assert response.status_code == 303
    return client
