"""JSON API v1 access rules: the same as in the browser. Another unit's case, task, decision or
PDF is a 404 (with a denied audit entry), roles without the right get 403, and odd ids are a
404, never a 500."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from test_api_kit import Apis, case_with_proposal, load_scenario, new_case

from engine.models import AuditEntry, Case, Decision, OpenTask


@pytest.fixture
def apis(app: Flask) -> Apis:
    return Apis(app)


def _denied(db: Session) -> int:
    count = db.execute(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.outcome == "denied")
    ).scalar_one()
    db.rollback()  # end the read: SQLite would block the app's next write
    return int(count)


@pytest.mark.parametrize(
    "outsider", ["handlaggare.barn", "arbetsledare.barn", "huge", "processagare", "granskare"]
)
def test_another_units_case_task_and_decision_are_404(
    apis: Apis, db: Session, outsider: str
) -> None:
    case_id, proposal = case_with_proposal(apis)
    approve_task = next(
        t for t in apis["arbetsledare"].json("GET", "/tasks")["tasks"] if t["case_id"] == case_id
    )
    done_task = (
        db.execute(
            select(OpenTask.id).where(OpenTask.case_id == case_id, OpenTask.status == "done")
        )
        .scalars()
        .first()
    )
    db.rollback()
    api = apis[outsider]
    before = _denied(db)
    requests = [
        ("GET", f"/cases/{case_id}", None),
        ("GET", f"/tasks/{approve_task['id']}", None),
        ("GET", f"/tasks/{done_task}", None),
        ("POST", f"/tasks/{approve_task['id']}/claim", None),
        ("POST", f"/tasks/{approve_task['id']}/complete", {"data": {}, "version": 1}),
        ("POST", f"/tasks/{done_task}/complete", {"data": {}, "version": 1}),
        ("GET", f"/decisions/{proposal['id']}", None),
        ("POST", f"/decisions/{proposal['id']}/approve", {}),
        ("POST", f"/decisions/{proposal['id']}/return", {"comment": "nej"}),
        ("GET", f"/decisions/{proposal['id']}/pdf", None),
    ]
    for method, path, body in requests:
        got = api.call(method, path, json_body=body, expect=404)
        assert got.get_json()["message"], path
    assert _denied(db) >= before + len(requests)
    assert all(t["case_id"] != case_id for t in api.json("GET", "/tasks")["tasks"])
    status = db.execute(select(Decision.status).where(Decision.id == proposal["id"])).scalar()
    db.rollback()
    assert status == "proposed"


def test_pdf_of_another_units_approved_decision_is_404(apis: Apis) -> None:
    _, proposal = case_with_proposal(apis)
    apis["arbetsledare"].json("POST", f"/decisions/{proposal['id']}/approve", {})
    apis["arbetsledare"].call("GET", f"/decisions/{proposal['id']}/pdf", expect=200)
    for outsider in ("handlaggare.barn", "arbetsledare.barn", "huge"):
        apis[outsider].call("GET", f"/decisions/{proposal['id']}/pdf", expect=404)


def test_walking_ids_finds_nothing_of_another_unit(apis: Apis) -> None:
    case = new_case(apis)
    outsider = apis["handlaggare.barn"]
    for n in range(max(1, case["id"] - 5), case["id"] + 6):
        outsider.call("GET", f"/cases/{n}", expect=404)
        outsider.call("GET", f"/decisions/{n}", expect=404)
        outsider.call("GET", f"/decisions/{n}/pdf", expect=404)


@pytest.mark.parametrize(
    "path",
    [
        "/cases/abc",
        "/cases/0",
        "/cases/-1",
        "/cases/1.5",
        "/cases/99999999999999999999",
        "/cases/2147483648",
        "/cases/%ff",
        "/decisions/abc",
        "/decisions/0",
        "/decisions/99999999999999999999",
        "/decisions/99999999999999999999/pdf",
        "/tasks/" + "a" * 300,
        "/tasks/no-such-task",
        "/tasks/%00",
        "/tasks/..%2f..%2fetc",
    ],
)
def test_odd_ids_are_404_not_500(apis: Apis, path: str) -> None:
    response = apis["handlaggare"].client.get(
        "/api/v1" + path, headers=apis["handlaggare"].headers()
    )
    # A NUL byte is refused up front for every request (400); other odd ids are a 404.
    expected = 400 if "%00" in path else 404
    assert response.status_code == expected, response.get_data(as_text=True)
    assert response.is_json and set(response.get_json()) >= {"error", "message"}


@pytest.mark.parametrize(
    "path",
    [
        "/decisions/99999999999999999999/approve",
        "/decisions/0/return",
        "/tasks/" + "b" * 300 + "/complete",
        "/tasks/zzz/claim",
    ],
)
def test_odd_ids_on_post_are_404(apis: Apis, path: str) -> None:
    api = apis["arbetsledare"]
    response = api.client.post(
        "/api/v1" + path, json={"comment": "x", "data": {}, "version": 1}, headers=api.headers()
    )
    assert response.status_code == 404
    assert response.is_json


def test_only_caseworkers_of_the_unit_register_cases(apis: Apis, db: Session) -> None:
    intake = load_scenario("01")["intake"]
    body = {"procedure": "identification", "data": intake}
    for username in ("arbetsledare", "enhetschef", "huge", "samordnare", "granskare", "admin"):
        apis[username].post("/cases", body, expect=403)
    caseworker = apis["handlaggare"]
    caseworker.post("/cases", {**body, "unit": "barn_och_unga"}, expect=403)
    unknown = caseworker.post("/cases", {**body, "unit": "no_such_unit"}, expect=422).get_json()
    assert "unit" in unknown["field_errors"]
    caseworker.post("/cases", {**body, "unit": 1}, expect=422)
    made = caseworker.post("/cases", {**body, "unit": "vuxenenheten"}, expect=201).get_json()
    assert made["unit"] == "vuxenenheten"
    barn = apis["handlaggare.barn"].post("/cases", body, expect=201).get_json()
    assert barn["unit"] == "barn_och_unga"
    # The new case is visible to its unit's supervisor, not to the other unit's.
    apis["arbetsledare.barn"].call("GET", f"/cases/{barn['id']}", expect=200)
    apis["arbetsledare"].call("GET", f"/cases/{barn['id']}", expect=404)
    count = db.execute(select(func.count()).select_from(Case)).scalar_one()
    db.rollback()
    assert count == 2


def test_claim_is_for_the_tasks_role(apis: Apis) -> None:
    case = new_case(apis)
    task = case["open_tasks"][0]
    apis["arbetsledare"].post(f"/tasks/{task['id']}/claim", expect=404)  # a supervisor
    apis["samordnare"].post(f"/tasks/{task['id']}/claim", expect=404)
    first = apis["handlaggare"].json("POST", f"/tasks/{task['id']}/claim")
    again = apis["handlaggare"].json("POST", f"/tasks/{task['id']}/claim")
    assert first["assignee_id"] == again["assignee_id"] is not None


def test_inbox_holds_only_the_callers_tasks(apis: Apis) -> None:
    case = new_case(apis)
    assert any(
        t["case_id"] == case["id"] for t in apis["handlaggare"].json("GET", "/tasks")["tasks"]
    )
    for other in ("handlaggare.barn", "arbetsledare", "samordnare", "huge"):
        assert all(t["case_id"] != case["id"] for t in apis[other].json("GET", "/tasks")["tasks"])
