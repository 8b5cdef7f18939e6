"""JSON API v1 through HTTP with real bearer tokens: the identification procedure end to end,
decisions (approve, return, PDF), field errors, conflicts, and fields a client may not set.

Every response is checked against the served OpenAPI document (test_api_kit.Api)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session
from test_api_kit import (
    SCENARIO_DIR,
    Apis,
    case_with_proposal,
    complete,
    load_scenario,
    new_case,
    open_task,
    play,
    run_scenario,
    start_case,
)

from engine.actions import runtime
from engine.models import AuditEntry, Case, Decision, ProcessInstance, ProcessVersion

SCENARIOS = sorted(p.name[:2] for p in SCENARIO_DIR.glob("*.json"))


@pytest.fixture
def apis(app: Flask) -> Apis:
    return Apis(app)


def _workflow_data(db: Session, case_id: int) -> dict[str, Any]:
    """Every value in the case's workflow (all tasks' data merged), read from the database."""
    db.expire_all()
    instance = db.execute(
        select(ProcessInstance).where(ProcessInstance.case_id == case_id)
    ).scalar_one()
    version = db.get(ProcessVersion, instance.version_id)
    assert version is not None
    wf = runtime.restore(version.sha256, version.spec_json, instance.state)
    merged: dict[str, Any] = {}
    db.rollback()  # end the read: SQLite would block the app's next write
    for task in wf.get_tasks():
        merged.update(task.data)
    merged.update(wf.data)
    return merged


# --- the whole procedure ------------------------------------------------------------------------


@pytest.mark.parametrize("scenario_id", SCENARIOS)
def test_each_identification_scenario_runs_over_the_api(apis: Apis, scenario_id: str) -> None:
    scenario = load_scenario(scenario_id)
    case_id = run_scenario(apis, scenario)

    case = apis["handlaggare"].json("GET", f"/cases/{case_id}")
    expect = scenario["expect"]
    if expect.get("completed"):
        assert case["open_tasks"] == []
    final = {}
    for decision in case["decisions"]:  # oldest first: the last of each type is the final one
        final[decision["type"]] = decision
    for dtype, outcome in expect.get("decisions", {}).items():
        assert final[dtype]["outcome"] == outcome
        assert final[dtype]["status"] == "approved"
        assert final[dtype]["document_available"] is True


def test_happy_path_start_to_pdf(apis: Apis, db: Session) -> None:
    caseworker, supervisor = apis["handlaggare"], apis["arbetsledare"]
    scenario = load_scenario("01")
    created = start_case(caseworker, scenario["intake"])
    assert created["number"].startswith("ID-")
    assert created["procedure"] == "identification"
    assert created["unit"] == "vuxenenheten"
    assert created["status"] == "Active"
    assert [t["bpmn_id"] for t in created["open_tasks"]] == ["task_screen_acute"]
    assert created["decisions"] == []

    # The first task is in the caseworker's inbox, with its form spec.
    inbox = caseworker.json("GET", "/tasks")["tasks"]
    first = next(t for t in inbox if t["case_id"] == created["id"])
    detail = caseworker.json("GET", f"/tasks/{first['id']}")
    assert detail["form_key"] == "identification_screening"
    assert {c.get("key") for c in detail["form"]["components"]} >= {"immediate_danger"}
    assert detail["role"] == "caseworker" and detail["status"] == "open"
    assert detail["version"] == first["version"] == created["open_tasks"][0]["version"]

    claimed = caseworker.json("POST", f"/tasks/{first['id']}/claim")
    assert claimed["assignee_id"] is not None

    play(apis, created["id"], scenario["steps"][:6])
    proposal = apis["handlaggare"].json("GET", f"/cases/{created['id']}")["decisions"][0]
    assert proposal["status"] == "proposed" and proposal["type"] == "D-A6"
    assert proposal["document_available"] is False
    supervisor.call("GET", f"/decisions/{proposal['id']}/pdf", expect=404)

    # The supervisor sees the approval task and approves with a token.
    approval = next(
        t for t in supervisor.json("GET", "/tasks")["tasks"] if t["case_id"] == created["id"]
    )
    assert approval["is_approval"] and approval["decision_id"] == proposal["id"]
    approved = supervisor.json(
        "POST", f"/decisions/{proposal['id']}/approve", {"comment": "Väl underbyggt."}
    )
    assert approved["status"] == "approved"
    assert approved["decided_by"] == "Anna Arbetsledare"
    assert approved["proposed_by"] == "Hanna Handläggare"
    assert approved["reasons"] and approved["legal_refs"]

    pdf = supervisor.call("GET", f"/decisions/{proposal['id']}/pdf", expect=200)
    assert pdf.data.startswith(b"%PDF")
    assert pdf.headers["Content-Disposition"].startswith("attachment;")
    assert pdf.headers["Cache-Control"] == "no-store"
    assert pdf.headers["X-Content-Type-Options"] == "nosniff"
    assert caseworker.call("GET", f"/decisions/{proposal['id']}/pdf", expect=200).data == pdf.data
    downloads = db.execute(
        select(AuditEntry.actor_name, AuditEntry.case_id)
        .where(AuditEntry.action == "document:downloaded")
        .order_by(AuditEntry.seq)
    ).all()
    db.rollback()  # end the read: SQLite would block the app's next write
    assert [tuple(d) for d in downloads] == [
        ("arbetsledare", created["id"]),
        ("handlaggare", created["id"]),
    ]

    play(apis, created["id"], scenario["steps"][7:])
    final = caseworker.json("GET", f"/cases/{created['id']}")
    assert final["open_tasks"] == []
    assert [(d["type"], d["status"]) for d in final["decisions"]] == [
        ("D-A6", "approved"),
        ("D-A7", "approved"),
        ("D-A8", "approved"),
    ]
    for decision in final["decisions"]:
        got = caseworker.call("GET", f"/decisions/{decision['id']}/pdf", expect=200)
        assert got.data.startswith(b"%PDF")


def test_completion_reports_next_task_and_decision(apis: Apis) -> None:
    scenario = load_scenario("01")
    case = start_case(apis["handlaggare"], scenario["intake"])
    result = complete(apis, case["id"], "task_screen_acute", scenario["steps"][0]["data"])
    assert result["case_id"] == case["id"]
    assert result["decision_id"] is None
    nxt = open_task(apis, case["id"], "task_hold_conversation")
    assert result["next_task_id"] == nxt["id"]
    play(apis, case["id"], scenario["steps"][1:5])
    proposal = complete(apis, case["id"], "task_propose_assessment", scenario["steps"][5]["data"])
    assert isinstance(proposal["decision_id"], int)
    assert proposal["next_task_id"] is None  # the approval is the supervisor's


def test_me_and_processes(apis: Apis) -> None:
    me = apis["enhetschef"].json("GET", "/me")
    assert me["username"] == "enhetschef" and me["auth"] == "bearer"
    assert {(r["role"], r["unit"]) for r in me["roles"]} == {
        ("unit_manager", "vuxenenheten"),
        ("unit_manager", "barn_och_unga"),
    }
    assert "csrf_token" not in me
    assert apis["samordnare"].json("GET", "/me")["roles"] == [{"role": "coordinator", "unit": None}]

    processes = apis["handlaggare"].json("GET", "/processes")["processes"]
    ident = next(p for p in processes if p["id"] == "identification")
    assert ident["start_form_key"] == "identification_intake"
    assert ident["start_form"]["components"]
    assert ident["can_start_in"] == ["vuxenenheten"]
    others = apis["arbetsledare"].json("GET", "/processes")["processes"]
    assert next(p for p in others if p["id"] == "identification")["can_start_in"] == []


# --- decisions ------------------------------------------------------------------------------------


def test_return_needs_a_comment_and_reopens_the_proposal(apis: Apis) -> None:
    case_id, proposal = case_with_proposal(apis)
    supervisor = apis["arbetsledare"]
    url = f"/decisions/{proposal['id']}/return"
    for body in (None, {}, {"comment": ""}, {"comment": "   "}):
        refused = supervisor.post(url, body, expect=422).get_json()
        assert list(refused["field_errors"]) == ["comment"]
    assert supervisor.post(url, {"comment": 42}, expect=422).get_json()["field_errors"]["comment"]
    assert supervisor.post(url, {"comment": "x" * 5001}, expect=422)
    assert apis["handlaggare"].json("GET", f"/decisions/{proposal['id']}")["status"] == "proposed"

    returned = supervisor.json("POST", url, {"comment": "Pröva om det är människohandel."})
    assert returned["status"] == "returned"
    assert returned["comment"] == "Pröva om det är människohandel."
    assert returned["document_id"] is None
    supervisor.call("GET", f"/decisions/{proposal['id']}/pdf", expect=404)
    # The proposal goes back to the caseworker; returning or approving again is a conflict.
    open_task(apis, case_id, "task_propose_assessment")
    again = supervisor.post(url, {"comment": "igen"}, expect=409).get_json()
    assert again["completed_by"] == "Anna Arbetsledare"
    supervisor.post(f"/decisions/{proposal['id']}/approve", {}, expect=409)


def test_approve_without_body_and_twice(apis: Apis) -> None:
    _, proposal = case_with_proposal(apis)
    supervisor = apis["arbetsledare"]
    url = f"/decisions/{proposal['id']}/approve"
    approved = supervisor.call("POST", url, expect=200).get_json()  # no body at all
    assert approved["status"] == "approved" and approved["comment"] is None
    conflict = supervisor.post(url, {}, expect=409).get_json()
    assert conflict["completed_by"] == "Anna Arbetsledare"
    assert conflict["case_id"] == proposal_case(apis, proposal["id"])


def proposal_case(apis: Apis, decision_id: int) -> int:
    return int(apis["arbetsledare"].json("GET", f"/decisions/{decision_id}")["case_id"])


def test_caseworker_cannot_approve_or_return(apis: Apis, db: Session) -> None:
    _, proposal = case_with_proposal(apis)
    caseworker = apis["handlaggare"]
    caseworker.post(f"/decisions/{proposal['id']}/approve", {}, expect=403)
    caseworker.post(f"/decisions/{proposal['id']}/return", {"comment": "nej"}, expect=403)
    status = db.execute(
        select(Decision.status, Decision.decided_by_id).where(Decision.id == proposal["id"])
    ).one()
    db.rollback()
    assert tuple(status) == ("proposed", None)
    # The supervisor's approval task cannot be pushed through /complete either.
    supervisor = apis["arbetsledare"]
    task = next(t for t in supervisor.json("GET", "/tasks")["tasks"] if t["is_approval"])
    supervisor.post(
        f"/tasks/{task['id']}/complete",
        {"data": {"approval": "approved"}, "version": task["version"]},
        expect=403,
    )
    assert apis["arbetsledare"].json("GET", f"/decisions/{proposal['id']}")["status"] == "proposed"


# --- validation and conflicts ---------------------------------------------------------------------


def test_complete_with_invalid_data_gives_field_errors(apis: Apis) -> None:
    case = new_case(apis)
    task = case["open_tasks"][0]
    api = apis["handlaggare"]
    url = f"/tasks/{task['id']}/complete"
    missing = api.post(
        url,
        {
            "data": {"immediate_danger": True, "children_involved": True, "children_count": 99},
            "version": task["version"],
        },
        expect=422,
    ).get_json()
    assert {
        "acute_action_taken",
        "children_context",
        "children_count",
        "children_whereabouts",
    } <= set(missing["field_errors"])
    wrong = api.post(
        url,
        {
            "data": {
                "immediate_danger": "ja",
                "children_involved": False,
                "exploitation_forms": ["no_such_form"],
            },
            "version": task["version"],
        },
        expect=422,
    ).get_json()
    assert "immediate_danger" in wrong["field_errors"]
    assert "exploitation_forms" in wrong["field_errors"]
    assert all(isinstance(m, str) for ms in wrong["field_errors"].values() for m in ms)
    # Nothing moved.
    still = open_task(apis, case["id"], "task_screen_acute")
    assert still["id"] == task["id"] and still["version"] == task["version"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"data": {}, "version": "x"}, "version"),
        ({"data": {}, "version": True}, "version"),
        ({"data": {}, "version": 1.5}, "version"),
        ({"data": {}}, "version"),
        ({"data": [], "version": 1}, "data"),
        ({"data": "x", "version": 1}, "data"),
        ({"version": 1}, "data"),
    ],
)
def test_complete_rejects_wrong_shapes(apis: Apis, body: dict[str, Any], field: str) -> None:
    task = new_case(apis)["open_tasks"][0]
    refused = apis["handlaggare"].post(f"/tasks/{task['id']}/complete", body, expect=422)
    assert field in refused.get_json()["field_errors"]


def test_bodies_that_are_not_json_objects_are_400(apis: Apis) -> None:
    task = new_case(apis)["open_tasks"][0]
    api = apis["handlaggare"]
    url = f"/tasks/{task['id']}/complete"
    api.call("POST", url, expect=400)  # no body
    api.call("POST", url, data="{not json", content_type="application/json", expect=400)
    api.call("POST", url, data="[1, 2]", content_type="application/json", expect=400)
    api.call("POST", url, data="null", content_type="application/json", expect=400)
    api.call("POST", url, data=b"\xff\xfe{", content_type="application/json", expect=400)
    api.call("POST", url, data="[" * 100_000, content_type="application/json", expect=400)
    api.call("POST", url, data={"version": "1"}, expect=400)  # a form post
    api.call("POST", url, data='{"data": {}, "version": 1}', content_type="text/plain", expect=400)
    api.call("POST", "/cases", data="[]", content_type="application/json", expect=400)
    api.call(
        "POST", f"/decisions/{1}/approve", data="[]", content_type="application/json", expect=400
    )


def test_start_case_validates_intake_like_the_browser(apis: Apis, db: Session) -> None:
    api = apis["handlaggare"]
    intake = dict(load_scenario("01")["intake"])
    before = len(db.execute(select(Case.id)).all())
    db.rollback()

    del intake["contact_datetime"]
    intake["citizenship"] = "XX-not-a-country"
    refused = api.post("/cases", {"procedure": "identification", "data": intake}, expect=422)
    errors = refused.get_json()["field_errors"]
    assert "contact_datetime" in errors and "citizenship" in errors

    api.post("/cases", {"procedure": "no_such_procedure", "data": {}}, expect=422)
    api.post("/cases", {"procedure": 7, "data": {}}, expect=422)
    api.post("/cases", {"data": {}}, expect=422)
    data: Any
    for data in ([], "x", None, 5):
        got = api.post("/cases", {"procedure": "identification", "data": data}, expect=422)
        assert "data" in got.get_json()["field_errors"]
    bad_pnr = {**load_scenario("01")["intake"], "personnummer": "19900101-1234"}
    bad = api.post("/cases", {"procedure": "identification", "data": bad_pnr}, expect=422)
    assert "personnummer" in bad.get_json()["field_errors"]
    db.expire_all()
    assert len(db.execute(select(Case.id)).all()) == before


def test_stale_version_is_a_conflict(apis: Apis) -> None:
    scenario = load_scenario("01")
    case = start_case(apis["handlaggare"], scenario["intake"])
    task = case["open_tasks"][0]
    api = apis["handlaggare"]
    stale = api.post(
        f"/tasks/{task['id']}/complete",
        {"data": scenario["steps"][0]["data"], "version": task["version"] - 1},
        expect=409,
    ).get_json()
    assert stale["case_id"] == case["id"]
    assert open_task(apis, case["id"], "task_screen_acute")["id"] == task["id"]
    api.post(
        f"/tasks/{task['id']}/complete",
        {"data": scenario["steps"][0]["data"], "version": task["version"] + 7},
        expect=409,
    )


def test_completing_a_completed_task_says_who_did_it(apis: Apis) -> None:
    scenario = load_scenario("01")
    case = start_case(apis["handlaggare"], scenario["intake"])
    task = case["open_tasks"][0]
    api = apis["handlaggare"]
    body = {"data": scenario["steps"][0]["data"], "version": task["version"]}
    api.post(f"/tasks/{task['id']}/complete", body, expect=200)
    again = api.post(f"/tasks/{task['id']}/complete", body, expect=409).get_json()
    assert again["completed_by"] == "Hanna Handläggare"
    assert again["case_id"] == case["id"]
    assert again["completed_at"]
    # Reading the finished task still works for the case team; claiming it is a conflict.
    done = api.json("GET", f"/tasks/{task['id']}")
    assert done["status"] == "done" and done["data"] == {}
    api.post(f"/tasks/{task['id']}/claim", expect=409)


# --- what a client may not set ------------------------------------------------------------------


def test_extra_fields_never_reach_the_case_or_task_data(apis: Apis, db: Session) -> None:
    api = apis["handlaggare"]
    scenario = load_scenario("01")
    created = api.post(
        "/cases",
        {
            "procedure": "identification",
            "data": {**scenario["intake"], "evil_key": "x", "role": "supervisor", "unit_id": 2},
            "unit_id": 2,
            "role": "supervisor",
            "assignee": "arbetsledare",
            "status": "Closed",
            "number": "ID-1999-00001",
            "secrecy_class": "NONE",
        },
        expect=201,
    ).get_json()
    assert created["unit"] == "vuxenenheten"
    assert created["status"] == "Active" and created["number"] != "ID-1999-00001"
    secrecy = db.execute(select(Case.secrecy_class).where(Case.id == created["id"])).scalar()
    db.rollback()
    assert secrecy == "SOCIAL_26_1"

    task = created["open_tasks"][0]
    data = {
        **scenario["steps"][0]["data"],
        "smuggled": "<script>",
        "approval": "approved",
        "role": "supervisor",
        "assignee": "arbetsledare",
    }
    api.post(
        f"/tasks/{task['id']}/complete",
        {
            "data": data,
            "version": task["version"],
            "role": "supervisor",
            "unit_id": 2,
            "assignee": "arbetsledare",
            "expected_version": 999,
            "case_id": 12345,
        },
        expect=200,
    )
    values = _workflow_data(db, created["id"])
    for key in ("evil_key", "smuggled", "approval", "role", "assignee", "unit_id"):
        assert key not in values, key
    assert values["immediate_danger"] is False  # the declared keys did arrive
    nxt = open_task(apis, created["id"], "task_hold_conversation")
    assert nxt["role"] == "caseworker" and nxt["assignee_id"] is None


def test_task_detail_shows_only_declared_keys(apis: Apis) -> None:
    case = new_case(apis)
    detail = apis["handlaggare"].json("GET", f"/tasks/{case['open_tasks'][0]['id']}")
    declared = {c["key"] for c in detail["form"]["components"] if c.get("key")}
    assert set(detail["data"]) <= declared
    assert "subject_alias" not in detail["data"]  # intake identity stays on the subject
