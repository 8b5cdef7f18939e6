"""JSON API v1 for process versions: upload (JSON and multipart), four-eyes publishing with
fresh authentication, diff, migration, scenarios, and process owners only.

Every response is checked against the served OpenAPI document (test_api_kit.Api)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from test_api_kit import Apis, load_scenario, token_for

from engine.models import AuditEntry, ProcessInstance
from engine.models.processes import ProcessVersion
from engine.processes import read_procedure_folder

ROOT = Path(__file__).resolve().parents[2]
IDENTIFICATION = read_procedure_folder(ROOT / "bpmn" / "identification")
OWNER, SECOND = "processagare", "processagare2"
OTHERS = ("handlaggare", "arbetsledare", "enhetschef", "huge", "granskare", "admin")
XXE = (
    '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">'
    '<bpmn:process id="p"><bpmn:documentation>&x;</bpmn:documentation></bpmn:process>'
    "</bpmn:definitions>"
)


@pytest.fixture
def apis(app: Flask) -> Apis:
    return Apis(app)


def _xml(old: str = "", new: str = "") -> str:
    text = IDENTIFICATION.bpmn_xml.decode("utf-8")
    if old:
        assert old in text
        text = text.replace(old, new, 1)
    return text


def _renamed() -> str:
    return _xml('name="A4 Indikatorbedömning"', 'name="A4 Indikatorer (ny)"')


def _upload(apis: Apis, xml: str, user: str = OWNER, expect: int = 201) -> dict[str, Any]:
    body = {"filename": "identification.bpmn", "bpmn": xml, "forms": IDENTIFICATION.forms}
    return apis[user].json("POST", "/process-versions", body, expect=expect)  # type: ignore[no-any-return]


def _count(app: Flask, model: Any) -> int:
    db = app.extensions["lotsen_db"]()
    try:
        return int(db.execute(select(func.count()).select_from(model)).scalar_one())
    finally:
        db.close()


def _published(apis: Apis, xml: str) -> int:
    created = _upload(apis, xml)
    version_id = int(created["version"]["id"])
    apis[OWNER].json("POST", f"/process-versions/{version_id}/submit", {})
    apis[SECOND].json("POST", f"/process-versions/{version_id}/approve", {})
    return version_id


# --- upload and the life cycle ------------------------------------------------------------------


def test_one_process_owner_cannot_publish_alone(app: Flask, apis: Apis) -> None:
    response = apis[OWNER].post(
        "/process-versions",
        {"filename": "identification.bpmn", "bpmn": _renamed(), "forms": IDENTIFICATION.forms},
        expect=201,
    )
    created = response.get_json()
    version = created["version"]
    assert created["check"] == {
        "ok": True,
        "process_id": "identification",
        "name": created["check"]["name"],
        "problems": [],
    }
    assert version["status"] == "draft" and version["author"] == OWNER
    assert response.headers["Location"].endswith(f"/api/v1/process-versions/{version['id']}")
    path = f"/process-versions/{version['id']}"
    assert apis[OWNER].json("GET", path)["bpmn"] == _renamed()

    submitted = apis[OWNER].json("POST", f"{path}/submit", {})
    assert submitted["status"] == "submitted" and submitted["submitted_by"] == OWNER
    refused = apis[OWNER].post(f"{path}/approve", {}, expect=403).get_json()
    assert refused["error"]
    db = app.extensions["lotsen_db"]()
    try:
        logged = db.execute(
            select(AuditEntry.actor_name).where(
                AuditEntry.action == "process_version:denied",
                AuditEntry.object_id == str(version["id"]),
            )
        ).scalars()
        assert list(logged) == [OWNER], "the refused self-approval is in the access log"
    finally:
        db.close()
    assert apis[OWNER].json("GET", path)["status"] == "submitted"

    published = apis[SECOND].json("POST", f"{path}/approve", {})
    assert published["status"] == "published"
    assert published["approved_by"] == SECOND and published["submitted_by"] == OWNER
    listed = apis[SECOND].json("GET", "/process-versions?process_id=identification")
    assert listed["versions"][0]["id"] == version["id"]
    assert all(v["process_id"] == "identification" for v in listed["versions"])


def test_approving_needs_a_fresh_login(app: Flask, apis: Apis) -> None:
    version_id = int(_upload(apis, _renamed())["version"]["id"])
    apis[OWNER].json("POST", f"/process-versions/{version_id}/submit", {})
    stale = token_for(app, SECOND, auth_time=int(time.time()) - 3600)
    response = apis.anonymous(stale).post(f"/process-versions/{version_id}/approve", {}, expect=401)
    assert "insufficient_user_authentication" in response.headers["WWW-Authenticate"]
    assert apis[SECOND].json("GET", f"/process-versions/{version_id}")["status"] == "submitted"


def test_multipart_upload_with_form_files(apis: Apis) -> None:
    data: dict[str, Any] = {
        "file": (io.BytesIO(_renamed().encode()), "identification.bpmn"),
        "form_files": [
            (io.BytesIO(json.dumps(spec).encode()), f"{key}.json")
            for key, spec in IDENTIFICATION.forms.items()
        ],
    }
    response = apis[OWNER].call(
        "POST", "/process-versions", data=data, content_type="multipart/form-data", expect=201
    )
    body = response.get_json()
    assert body["check"]["ok"] and body["version"]["forms"] == IDENTIFICATION.forms
    assert body["version"]["filename"] == "identification.bpmn"


def test_a_draft_with_problems_is_stored_but_cannot_be_submitted(apis: Apis) -> None:
    created = _upload(apis, _xml('name="dv_team">', 'name="nobody">'))
    assert not created["check"]["ok"]
    (problem,) = created["check"]["problems"]
    assert problem["code"] == "lane.unknown" and problem["element_id"] == "lane_dv_team"
    assert problem["message_sv"] and problem["message_en"]
    version_id = created["version"]["id"]
    refused = apis[OWNER].post(f"/process-versions/{version_id}/submit", {}, expect=422)
    assert "lane.unknown" in " ".join(refused.get_json()["field_errors"]["bpmn"])


def test_a_hostile_or_foreign_file_is_refused_and_nothing_is_stored(app: Flask, apis: Apis) -> None:
    before = _count(app, ProcessVersion)
    body = (
        apis[OWNER]
        .post("/process-versions", {"filename": "x.bpmn", "bpmn": XXE}, expect=422)
        .get_json()
    )
    assert [p["code"] for p in body["check"]["problems"]] == ["xml.doctype"]
    assert "root:" not in json.dumps(body)
    apis[OWNER].post("/process-versions", {"filename": "x.txt", "bpmn": "<a/>"}, expect=422)
    apis[OWNER].post("/process-versions", {"filename": "x.bpmn"}, expect=422)
    apis[OWNER].call(
        "POST", "/process-versions", data="{not json", content_type="application/json", expect=400
    )
    assert _count(app, ProcessVersion) == before


def test_reject_with_a_reason(apis: Apis) -> None:
    version_id = int(_upload(apis, _renamed())["version"]["id"])
    path = f"/process-versions/{version_id}"
    apis[OWNER].json("POST", f"{path}/submit", {})
    apis[SECOND].post(f"{path}/reject", {}, expect=422)
    body = apis[SECOND].json("POST", f"{path}/reject", {"reason": "Fel lagrum."})
    assert body["status"] == "rejected" and body["rejected_reason"] == "Fel lagrum."
    apis[SECOND].post(f"{path}/approve", {}, expect=409)


# --- diff ---------------------------------------------------------------------------------------


def test_diff_lists_what_changed(apis: Apis) -> None:
    first = apis[OWNER].json("GET", "/process-versions?process_id=identification")["versions"][0]
    draft = _upload(apis, _renamed())["version"]
    body = apis[OWNER].json("GET", f"/process-versions/{first['id']}/diff/{draft['id']}")
    assert body["elements"]["changed"] == [
        {
            "id": "task_assess_indicators",
            "type": "userTask",
            "name": "A4 Indikatorer (ny)",
            "changes": [
                {"attribute": "name", "old": "A4 Indikatorbedömning", "new": "A4 Indikatorer (ny)"}
            ],
        }
    ]
    assert body["elements"]["added"] == [] and body["forms"] == []


def test_diff_is_for_process_owners_only(app: Flask, apis: Apis) -> None:
    """The matrix cannot build this two-id URL; every other caller is refused here."""
    first = apis[OWNER].json("GET", "/process-versions")["versions"][0]["id"]
    draft = _upload(apis, _renamed())["version"]["id"]
    url = f"/process-versions/{first}/diff/{draft}"
    for user in OTHERS:
        apis[user].get(url, expect=403)
    apis.anonymous().get(url, expect=401)
    apis[OWNER].get(f"/process-versions/{first}/diff/999999", expect=404)
    apis[OWNER].get(f"/process-versions/999999/diff/{first}", expect=404)
    db = app.extensions["lotsen_db"]()
    try:
        denied = db.execute(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "process_version:denied")
        ).scalar_one()
    finally:
        db.close()
    assert denied >= len(OTHERS)


# --- migration ----------------------------------------------------------------------------------


def _instance_version(app: Flask, case_id: int) -> int:
    db = app.extensions["lotsen_db"]()
    try:
        return int(
            db.execute(
                select(ProcessInstance.version_id).where(ProcessInstance.case_id == case_id)
            ).scalar_one()
        )
    finally:
        db.close()


def test_a_running_case_stays_on_its_version_and_moves_only_by_migration(
    app: Flask, apis: Apis
) -> None:
    intake = load_scenario("01")["intake"]
    case = apis["handlaggare"].json(
        "POST", "/cases", {"procedure": "identification", "data": intake}, expect=201
    )
    old_version = _instance_version(app, case["id"])
    new_version = _published(apis, _renamed())
    assert _instance_version(app, case["id"]) == old_version

    dry = apis[OWNER].json("POST", f"/process-versions/{new_version}/migrate", {})
    assert dry["applied"] is False and dry["movable"] == 1 and dry["moved"] == []
    (plan,) = dry["instances"]
    assert (
        plan["case_id"] == case["id"]
        and plan["can_move"]
        and plan["from_version_id"] == old_version
    )
    assert _instance_version(app, case["id"]) == old_version

    applied = apis[OWNER].json("POST", f"/process-versions/{new_version}/migrate", {"apply": True})
    assert applied["applied"] is True and len(applied["moved"]) == 1
    assert _instance_version(app, case["id"]) == new_version
    apis[OWNER].post(f"/process-versions/{new_version}/migrate", {"apply": "yes"}, expect=422)
    # a new case starts on the newest published version
    fresh = apis["handlaggare"].json(
        "POST", "/cases", {"procedure": "identification", "data": intake}, expect=201
    )
    assert _instance_version(app, fresh["id"]) == new_version


def test_scenarios_of_a_refused_draft_are_not_run(apis: Apis) -> None:
    version_id = _upload(apis, _xml('name="dv_team">', 'name="nobody">'))["version"]["id"]
    body = apis[OWNER].json("POST", f"/process-versions/{version_id}/scenarios", {})
    assert body["passed"] is False and body["results"]
    assert all(not r["passed"] for r in body["results"])


def test_unknown_versions_are_404_for_owners(apis: Apis) -> None:
    for path in (
        "/process-versions/999999",
        "/process-versions/0",
        "/process-versions/99999999999",
    ):
        apis[OWNER].get(path, expect=404)
    for action in ("submit", "approve", "migrate", "scenarios"):
        apis[SECOND].post(f"/process-versions/999999/{action}", {}, expect=404)


# --- process owners only ------------------------------------------------------------------------


@pytest.mark.parametrize("user", OTHERS)
def test_other_roles_get_403_everywhere(app: Flask, apis: Apis, user: str) -> None:
    version_id = _upload(apis, _renamed())["version"]["id"]
    before = _count(app, ProcessVersion)
    api = apis[user]
    api.get("/process-versions", expect=403)
    api.get(f"/process-versions/{version_id}", expect=403)
    api.get("/process-versions/999999", expect=403)  # no existence oracle
    api.post(
        "/process-versions",
        {"filename": "identification.bpmn", "bpmn": _renamed(), "forms": IDENTIFICATION.forms},
        expect=403,
    )
    for action in ("submit", "approve", "reject", "migrate", "scenarios"):
        api.post(f"/process-versions/{version_id}/{action}", {"reason": "x"}, expect=403)
    assert _count(app, ProcessVersion) == before
    assert apis[OWNER].json("GET", f"/process-versions/{version_id}")["status"] == "draft"


def test_anonymous_callers_get_401(apis: Apis) -> None:
    anonymous = apis.anonymous()
    anonymous.get("/process-versions", expect=401)
    anonymous.post("/process-versions", {"filename": "a.bpmn", "bpmn": "<a/>"}, expect=401)
    anonymous.get("/process-versions/1", expect=401)


# --- CSRF for session callers -------------------------------------------------------------------

EVIL = {"Origin": "https://evil.example"}


def test_session_callers_need_the_csrf_header_bearer_callers_do_not(app: Flask, apis: Apis) -> None:
    """security.md §6 cases 9-10 for every POST of this API (test_csrf.py's API table has no
    extension point yet, so the same tries are made here)."""
    from matrix_kit import login_browser

    owner, other = login_browser(app, OWNER), login_browser(app, "samordnare")
    version_id = _upload(apis, _xml('name="dv_team">', 'name="nobody">'))["version"]["id"]
    upload = {"filename": "x.txt", "bpmn": "<a/>"}  # refused past the CSRF check (422)
    posts = {
        "/api/v1/process-versions": upload,
        **{
            f"/api/v1/process-versions/{version_id}/{action}": {}
            for action in ("submit", "approve", "reject", "migrate", "scenarios")
        },
    }
    before = _count(app, ProcessVersion)
    for path, body in posts.items():
        tries = {
            "no header": {},
            "another session's token": {"X-CSRFToken": other.csrf},
            "own token, other origin": {"X-CSRFToken": owner.csrf, **EVIL},
        }
        for name, headers in tries.items():
            status = owner.client.post(path, json=body, headers=headers).status_code
            assert status == 400, f"{path} {name}: {status}"
        status = owner.client.post(path, json=body, headers={"X-CSRFToken": owner.csrf}).status_code
        assert status not in (400, 401, 403), f"{path} with its own token: {status}"
        bearer = {"Authorization": f"Bearer {token_for(app, OWNER)}"}
        status = app.test_client().post(path, json=body, headers=bearer).status_code
        assert status not in (400, 401, 403), f"{path} with a bearer token: {status}"
    assert _count(app, ProcessVersion) == before
