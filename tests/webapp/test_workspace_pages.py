"""The process-owner workspace pages (issue 5): who gets in, saving with the checker's problems,
form previews, upload and download, four-eyes publishing, diff, migration, scenarios, and the
case diagram for the case's readers.

Assertions look at status codes, ids, data attributes and the database, not at UI text (the UI
text is translated).
"""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from pathlib import Path
from typing import Any

from flask import Flask
from matrix_kit import Browser, actor_of, anonymous_browser, drive_case, login_browser
from sqlalchemy import select

from engine import workspace
from engine.db import unit_of_work
from engine.models import AuditEntry, OpenTask, ProcessInstance, ProcessVersion
from engine.processes import latest_published
from engine.roles import load_roles

ROOT = Path(__file__).resolve().parents[2]
IDENT = ROOT / "bpmn" / "identification"
IDENT_XML = (IDENT / "identification.bpmn").read_text(encoding="utf-8")
IDENT_FORMS = {p.stem: json.loads(p.read_text("utf-8")) for p in (IDENT / "forms").glob("*.json")}
BAD_LANE_XML = IDENT_XML.replace(
    '<bpmn:lane id="lane_caseworker" name="caseworker">',
    '<bpmn:lane id="lane_caseworker" name="handlaggare_typo">',
)
RENAMED_XML = IDENT_XML.replace('name="A2 Akut bedömning"', 'name="A2 Akut bedömning (ny)"')


def _db(app: Flask) -> Any:
    return unit_of_work(app.extensions["lotsen_db"])


def _published_id(app: Flask, process_id: str = "identification") -> int:
    with _db(app) as db:
        return int(latest_published(db, process_id).id)


def _version(app: Flask, version_id: int) -> ProcessVersion:
    with _db(app) as db:
        version = db.get(ProcessVersion, version_id)
        assert version is not None
        db.expunge(version)
        return version


def _count(app: Flask) -> int:
    with _db(app) as db:
        return len(db.execute(select(ProcessVersion.id)).all())


def _save_json(browser: Browser, body: dict[str, Any], *, csrf: bool = True) -> Any:
    headers = {"X-CSRFToken": browser.csrf} if csrf else {}
    return browser.client.post("/workspace/save", json=body, headers=headers)


def _draft(app: Flask, xml: str = IDENT_XML, *, owner: str = "processagare") -> int:
    with _db(app) as db:
        version, _ = workspace.save_draft(
            db, actor_of(db, owner), bpmn_xml=xml, forms=IDENT_FORMS, filename="identification.bpmn"
        )
        return int(version.id)


# --- who gets in ---------------------------------------------------------------------------------


def test_only_process_owners_use_the_workspace(app: Flask) -> None:
    version_id = _published_id(app)
    owner = login_browser(app, "processagare")
    index = owner.client.get("/workspace/")
    assert index.status_code == 200
    page = index.get_data(as_text=True)
    for process_id in ("identification", "child_safeguarding", "housing_notification"):
        assert f'id="proc-{process_id}"' in page
    assert f'href="/workspace/versions/{version_id}"' in page
    for path in ("", "/edit", "/model.json", "/diagram", "/migration", "/download"):
        assert owner.client.get(f"/workspace/versions/{version_id}{path}").status_code == 200
    for username in ("handlaggare", "arbetsledare", "enhetschef", "admin", "granskare", "huge"):
        other = login_browser(app, username)
        assert other.client.get("/workspace/").status_code == 403, username
        response = other.client.get(f"/workspace/versions/{version_id}/model.json")
        assert response.status_code == 403, username
        assert b"<bpmn:definitions" not in response.data
        assert _save_json(other, {"bpmn": IDENT_XML, "forms": {}}).status_code == 403
    with _db(app) as db:
        denied = db.execute(
            select(AuditEntry.actor_name).where(
                AuditEntry.action == "process_version:denied",
                AuditEntry.object_id == str(version_id),
            )
        ).scalars()
        assert {"handlaggare", "admin", "huge"} <= set(denied)
    anonymous = anonymous_browser(app)
    response = anonymous.client.get("/workspace/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert _count(app) == 4  # nothing was saved by the refused callers


def test_modeler_page_is_csp_clean_and_offers_the_lane_roles(app: Flask) -> None:
    version_id = _published_id(app)
    owner = login_browser(app, "processagare")
    response = owner.client.get(f"/workspace/versions/{version_id}/edit")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    scripts = re.findall(r"<script([^>]*)>", page)
    assert scripts and all('src="/static/' in attrs for attrs in scripts), scripts
    assert "/static/vendor/bpmn-js/bpmn-modeler.production.min.js" in page
    assert "style=" not in page
    assert f'data-model-url="/workspace/versions/{version_id}/model.json"' in page
    assert 'data-version-id=""' in page  # a published version is saved as a new draft
    assert f'data-base-id="{version_id}"' in page
    lane_select = re.search(r'<select id="prop-lane">(.*?)</select>', page, re.S)
    assert lane_select is not None
    offered = set(re.findall(r'value="([^"]+)"', lane_select.group(1)))
    assert offered == {r.id for r in load_roles().values() if r.lane}
    assert "process_owner" not in offered
    data = owner.client.get(f"/workspace/versions/{version_id}/model.json").get_json()
    assert data["bpmn"] == _version(app, version_id).bpmn_xml
    assert set(data["forms"]) == set(IDENT_FORMS)


# --- saving: the checker's problems come back, nothing is lost -----------------------------------


def test_save_returns_the_checkers_problems_then_the_fix_is_saved_in_place(app: Flask) -> None:
    base_id = _published_id(app)
    owner = login_browser(app, "processagare")
    before = _count(app)
    refused = _save_json(owner, {"bpmn": BAD_LANE_XML, "forms": IDENT_FORMS}, csrf=False)
    assert refused.status_code == 400 and _count(app) == before

    response = _save_json(
        owner, {"bpmn": BAD_LANE_XML, "forms": IDENT_FORMS, "base_version_id": base_id}
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert body["ok"] is False and body["status"] == "draft"
    lane_problems = [p for p in body["problems"] if p["element_id"] == "lane_caseworker"]
    assert lane_problems, body["problems"]
    assert lane_problems[0]["message_sv"] and lane_problems[0]["message_en"]
    draft_id = body["version_id"]
    stored = _version(app, draft_id)
    assert stored.bpmn_xml == BAD_LANE_XML  # kept although the check failed
    assert stored.status == "draft" and stored.base_version_id == base_id
    assert _version(app, base_id).status == "published"
    assert body["modeler_url"] == f"/workspace/versions/{draft_id}/edit"

    page = owner.client.get(f"/workspace/versions/{draft_id}").get_data(as_text=True)
    assert "<code>lane_caseworker</code>" in page
    edit = owner.client.get(f"/workspace/versions/{draft_id}/edit").get_data(as_text=True)
    assert f'data-version-id="{draft_id}"' in edit

    fixed = _save_json(owner, {"bpmn": RENAMED_XML, "forms": IDENT_FORMS, "version_id": draft_id})
    body = fixed.get_json()
    assert body["ok"] is True and body["problems"] == [] and body["version_id"] == draft_id
    assert _count(app) == before + 1
    assert "A2 Akut bedömning (ny)" in _version(app, draft_id).bpmn_xml


def test_save_refuses_what_it_cannot_store_with_a_clear_answer(app: Flask) -> None:
    owner = login_browser(app, "processagare")
    before = _count(app)
    response = _save_json(owner, {"bpmn": IDENT_XML, "forms": ["not", "an", "object"]})
    assert response.status_code == 422 and response.get_json()["message"]
    response = _save_json(owner, {"bpmn": "", "forms": {}})
    assert response.status_code == 422
    response = _save_json(owner, {"bpmn": IDENT_XML, "forms": {}, "version_id": "x1"})
    assert response.status_code == 400
    # a published version is never changed in place
    published = _published_id(app)
    response = _save_json(owner, {"bpmn": IDENT_XML, "forms": {}, "version_id": published})
    assert response.status_code == 409 and response.get_json()["message"]
    # the plain form (no script) keeps the forms of the version it was opened on
    response = owner.post("/workspace/save", {"bpmn": RENAMED_XML, "base_version_id": published})
    assert response.status_code == 303
    assert _count(app) == before + 1
    with _db(app) as db:
        newest = db.execute(select(ProcessVersion).order_by(ProcessVersion.id.desc())).scalar()
        assert newest is not None and set(newest.forms) == set(IDENT_FORMS)
    response = owner.post("/workspace/save", {"bpmn": ""})
    assert response.status_code == 303 and _count(app) == before + 1


# --- form specs ----------------------------------------------------------------------------------


def test_form_preview_uses_the_caseworkers_form_builder(app: Flask) -> None:
    owner = login_browser(app, "processagare")
    headers = {"X-CSRFToken": owner.csrf}
    spec = IDENT_FORMS["identification_indicators"]
    response = owner.client.post("/workspace/forms/preview", json={"spec": spec}, headers=headers)
    body = response.get_json()
    assert response.status_code == 200 and body["ok"] is True, body
    keys = [c["key"] for c in spec["components"] if c.get("key")]
    for key in keys:
        assert f'name="{key}"' in body["html"]
    assert "<fieldset disabled" in body["html"]
    assert "<script" not in body["html"]

    broken = {"id": "x", "title": {"sv": "X", "en": "X"}, "components": [{"type": "select"}]}
    response = owner.client.post("/workspace/forms/preview", json={"spec": broken}, headers=headers)
    body = response.get_json()
    assert body["ok"] is False and body["problems"] and body["html"] is None
    response = owner.client.post("/workspace/forms/preview", json={"spec": [1]}, headers=headers)
    assert response.get_json()["ok"] is False

    typed = '{"id": "x", "title": <oops'
    response = owner.post("/workspace/forms/preview", {"spec": typed})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "{&#34;id&#34;: &#34;x&#34;, &#34;title&#34;: &lt;oops" in page  # the text is kept
    assert 'class="error-summary"' in page
    response = owner.post("/workspace/forms/preview", {"spec": json.dumps(spec)})
    assert response.status_code == 200
    assert all(f'name="{key}"' in response.get_data(as_text=True) for key in keys)


# --- upload and download -------------------------------------------------------------------------


def _file(data: bytes, name: str) -> tuple[io.BytesIO, str]:
    return io.BytesIO(data), name


def test_upload_stores_a_draft_and_refuses_unreadable_files(app: Flask) -> None:
    owner = login_browser(app, "processagare")
    before = _count(app)
    files = [
        ("forms", _file(json.dumps(spec).encode(), f"{key}.json"))
        for key, spec in IDENT_FORMS.items()
    ]
    response = owner.post(
        "/workspace/upload",
        [("bpmn", _file(RENAMED_XML.encode(), "identification.bpmn")), *files],
        content_type="multipart/form-data",
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:1000]
    draft_id = int(response.headers["Location"].rsplit("/", 1)[-1])
    draft = _version(app, draft_id)
    assert draft.status == "draft" and draft.check_ok and set(draft.forms) == set(IDENT_FORMS)
    assert _count(app) == before + 1

    download = owner.client.get(f"/workspace/versions/{draft_id}/download")
    assert download.status_code == 200
    assert download.data.decode() == draft.bpmn_xml
    assert "attachment" in download.headers["Content-Disposition"]
    assert download.headers["Content-Security-Policy"].startswith("sandbox")
    archive = owner.client.get(f"/workspace/versions/{draft_id}/download?format=zip")
    names = zipfile.ZipFile(io.BytesIO(archive.data)).namelist()
    assert "identification/identification.bpmn" in names
    assert "identification/forms/identification_intake.json" in names
    # the zip goes back in as it came out: a new draft with the same model and forms
    response = owner.post(
        "/workspace/upload",
        [("bpmn", _file(archive.data, "identification-v2.zip"))],
        content_type="multipart/form-data",
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:1000]
    again = _version(app, int(response.headers["Location"].rsplit("/", 1)[-1]))
    assert again.bpmn_xml == draft.bpmn_xml and again.forms == draft.forms
    before = _count(app)
    one_model = io.BytesIO()
    with zipfile.ZipFile(one_model, "w") as bad_zip:
        bad_zip.writestr("a.bpmn", IDENT_XML)
        bad_zip.writestr("b.bpmn", IDENT_XML)

    for form in (
        [("bpmn", _file(one_model.getvalue(), "two-models.zip"))],
        [("bpmn", _file(b"PK not a zip", "broken.zip"))],
        [("bpmn", _file(b"<not xml", "broken.bpmn"))],
        [("bpmn", _file(b'<!DOCTYPE x [<!ENTITY e "x">]><x>&e;</x>', "evil.bpmn"))],
        [],
        [
            ("bpmn", _file(IDENT_XML.encode(), "identification.bpmn")),
            ("forms", _file(b"{", "bad name.json")),
        ],
        [
            ("bpmn", _file(IDENT_XML.encode(), "identification.bpmn")),
            ("forms", _file(b"{not json", "identification_intake.json")),
        ],
    ):
        response = owner.post("/workspace/upload", form, content_type="multipart/form-data")
        assert response.status_code == 422, form
        assert 'class="error-summary"' in response.get_data(as_text=True)
    assert _count(app) == before


# --- the life cycle ------------------------------------------------------------------------------


def test_four_eyes_publishing_with_fresh_authentication(app: Flask) -> None:
    author = login_browser(app, "processagare")
    draft_id = _draft(app, RENAMED_XML)
    assert author.post(f"/workspace/versions/{draft_id}/submit").status_code == 303
    assert _version(app, draft_id).status == "submitted"
    page = author.client.get(f"/workspace/versions/{draft_id}").get_data(as_text=True)
    assert f'action="/workspace/versions/{draft_id}/approve"' not in page  # not for the author
    assert author.post(f"/workspace/versions/{draft_id}/approve").status_code == 303
    assert _version(app, draft_id).status == "submitted"  # one person cannot publish alone

    second = login_browser(app, "processagare2")
    page = second.client.get(f"/workspace/versions/{draft_id}").get_data(as_text=True)
    assert f'action="/workspace/versions/{draft_id}/approve"' in page
    with second.client.session_transaction() as session:
        session["auth_at"] = 0  # the password was entered long ago
    response = second.post(f"/workspace/versions/{draft_id}/approve")
    assert response.status_code == 303 and "/reauth" in response.headers["Location"]
    assert _version(app, draft_id).status == "submitted"
    with second.client.session_transaction() as session:
        session["auth_at"] = time.time()
    assert second.post(f"/workspace/versions/{draft_id}/approve").status_code == 303
    published = _version(app, draft_id)
    assert published.status == "published"
    with _db(app) as db:
        assert published.published_by_id == actor_of(db, "processagare2").user_id
    index = second.client.get("/workspace/").get_data(as_text=True)
    assert "badge-ws-published" in index


def test_reject_needs_a_reason_and_keeps_it(app: Flask) -> None:
    draft_id = _draft(app, RENAMED_XML)
    with _db(app) as db:
        workspace.submit(db, actor_of(db, "processagare"), draft_id)
    reviewer = login_browser(app, "processagare2")
    response = reviewer.post(f"/workspace/versions/{draft_id}/reject", {"reason": "  "})
    assert response.status_code == 422
    assert 'class="error-summary"' in response.get_data(as_text=True)
    assert _version(app, draft_id).status == "submitted"
    long_text = "x" * 2001
    response = reviewer.post(f"/workspace/versions/{draft_id}/reject", {"reason": long_text})
    assert response.status_code == 422 and long_text in response.get_data(as_text=True)
    reason = "Fristen i A2 saknar lagstöd."
    response = reviewer.post(f"/workspace/versions/{draft_id}/reject", {"reason": reason})
    assert response.status_code == 303
    rejected = _version(app, draft_id)
    assert rejected.status == "rejected" and rejected.rejected_reason == reason
    page = reviewer.client.get(f"/workspace/versions/{draft_id}").get_data(as_text=True)
    assert reason in page
    # a rejected version is not submitted again; it opens as a new draft in the modeler
    assert reviewer.post(f"/workspace/versions/{draft_id}/submit").status_code == 303
    assert _version(app, draft_id).status == "rejected"
    edit = reviewer.client.get(f"/workspace/versions/{draft_id}/edit").get_data(as_text=True)
    assert 'data-version-id=""' in edit


def test_diff_page_lists_changed_elements_and_refuses_bad_choices(app: Flask) -> None:
    base_id = _published_id(app)
    draft_id = _draft(app, RENAMED_XML)
    owner = login_browser(app, "processagare")
    response = owner.client.get(f"/workspace/diff?a={base_id}&b={draft_id}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<code>task_screen_acute</code>" in page
    assert "A2 Akut bedömning (ny)" in page
    assert owner.client.get("/workspace/diff").status_code == 200
    assert owner.client.get("/workspace/diff?a=x&b=1").status_code == 422
    assert owner.client.get(f"/workspace/diff?a={base_id}&b=999999").status_code == 404


def _publish(app: Flask, xml: str) -> int:
    version_id = _draft(app, xml)
    with _db(app) as db:
        workspace.submit(db, actor_of(db, "processagare"), version_id)
        workspace.approve(db, actor_of(db, "processagare2"), version_id)
    return version_id


def test_migration_is_a_dry_run_until_applied(app: Flask) -> None:
    db = app.extensions["lotsen_db"]()
    try:
        case_id = drive_case(app, db, "vuxenenheten", approve=False)["case_id"]
    finally:
        db.close()
    old_id = _published_id(app)

    def pinned() -> int:
        with _db(app) as db:
            return int(
                db.execute(
                    select(ProcessInstance.version_id).where(ProcessInstance.case_id == case_id)
                ).scalar_one()
            )

    owner = login_browser(app, "processagare")
    # a step the case has completed changed: it may not move, even when asked
    changed_done = _publish(app, RENAMED_XML)
    page = owner.client.get(f"/workspace/versions/{changed_done}/migration").get_data(as_text=True)
    assert "task_screen_acute" in page and 'name="confirm"' not in page
    response = owner.post(f"/workspace/versions/{changed_done}/migrate", {"confirm": "yes"})
    assert response.status_code == 303 and pinned() == old_id
    # only a step the case has not reached changed: it may move, after confirmation
    untouched = _publish(
        app,
        IDENT_XML.replace(
            'name="A3 Första samtal (kvinnofridsteamet)"', 'name="A3 Samtal (kvinnofridsteamet)"'
        ),
    )
    page = owner.client.get(f"/workspace/versions/{untouched}/migration").get_data(as_text=True)
    assert 'name="confirm"' in page, page[page.find("<main") :][:3000]
    response = owner.post(f"/workspace/versions/{untouched}/migrate", {})
    assert response.status_code == 303 and pinned() == old_id  # not without the confirmation
    response = owner.post(f"/workspace/versions/{untouched}/migrate", {"confirm": "yes"})
    assert response.status_code == 303 and pinned() == untouched
    with _db(app) as db:
        actions = set(db.execute(select(AuditEntry.action)).scalars())
    assert any("migrat" in a for a in actions), sorted(actions)


def test_scenarios_run_against_a_version_from_the_page(app: Flask) -> None:
    owner = login_browser(app, "processagare")
    version_id = _published_id(app, "housing_notification")
    response = owner.post(f"/workspace/versions/{version_id}/scenarios")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    names = [p.stem for p in (ROOT / "bpmn" / "housing_notification" / "scenarios").glob("*.json")]
    for name in names:
        assert name in page
    assert page.count('class="check-ok">') >= len(names)  # every bundled scenario passes
    bad = _draft(app, BAD_LANE_XML)
    page = owner.post(f"/workspace/versions/{bad}/scenarios").get_data(as_text=True)
    assert 'class="check-failed">' in page


# --- diagrams ------------------------------------------------------------------------------------


def test_case_diagram_for_the_case_readers_only(app: Flask) -> None:
    db = app.extensions["lotsen_db"]()
    try:
        ids = drive_case(app, db, "vuxenenheten", approve=False)
        done = db.get(OpenTask, ids["done_task_id"])
        assert done is not None
        done_bpmn = done.bpmn_id
        current = {
            t.bpmn_id
            for t in db.execute(
                select(OpenTask).where(
                    OpenTask.case_id == ids["case_id"], OpenTask.status == "open"
                )
            ).scalars()
        }
    finally:
        db.close()
    case_id = ids["case_id"]
    url = f"/workspace/cases/{case_id}/diagram.json"
    reader = login_browser(app, "handlaggare")
    data = reader.client.get(url).get_json()
    assert data["process_id"] == "identification" and "<bpmn:definitions" in data["bpmn"]
    assert done_bpmn in data["done"] and set(data["current"]) == current
    assert not set(data["done"]) & set(data["current"])
    page = reader.client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert f'data-url="{url}"' in page
    assert "ws-step--done" in page and "ws-step--current" in page and "ws-step--todo" in page
    assert page.count('class="ws-step ') == len(
        [t for t in _published_model_tasks(app) if t.is_user_task]
    )
    for username in ("handlaggare.barn", "arbetsledare.barn", "processagare", "huge", "admin"):
        other = login_browser(app, username)
        response = other.client.get(url)
        assert response.status_code == 404, username
        assert b"bpmn:definitions" not in response.data
    with _db(app) as db:
        denied = db.execute(
            select(AuditEntry.actor_name).where(
                AuditEntry.action == "case:denied", AuditEntry.case_id == case_id
            )
        ).scalars()
        assert {"handlaggare.barn", "processagare"} <= set(denied)
    response = anonymous_browser(app).client.get(url)
    assert response.status_code == 302
    assert (
        login_browser(app, "handlaggare")
        .client.get("/workspace/cases/999999/diagram.json")
        .status_code
        == 404
    )


def _published_model_tasks(app: Flask) -> list[Any]:
    from engine.processes import model_for

    with _db(app) as db:
        return list(model_for(latest_published(db, "identification")).tasks.values())


def test_read_only_diagram_of_a_version_lists_its_steps(app: Flask) -> None:
    owner = login_browser(app, "processagare")
    version_id = _published_id(app)
    page = owner.client.get(f"/workspace/versions/{version_id}/diagram").get_data(as_text=True)
    assert f'data-url="/workspace/versions/{version_id}/model.json"' in page
    assert "bpmn-navigated-viewer.production.min.js" in page
    assert "A2 Akut bedömning" in page and "A4 Indikatorbedömning" in page
    bad = _draft(app, "<not xml")
    assert owner.client.get(f"/workspace/versions/{bad}/diagram").status_code == 200
    assert owner.client.get("/workspace/versions/999999").status_code == 404
    assert owner.client.get("/workspace/versions/0").status_code == 404


# --- files from other tools ----------------------------------------------------------------------

CORPUS = ROOT.parent / "shared" / "bpmn-corpus"


def test_every_corpus_file_uploads_or_is_refused_clearly(app: Flask) -> None:
    """A file from another tool becomes a draft whose pages all open, or a 422 with problems."""
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix != ".md")
    if not files:
        import pytest

        pytest.skip(f"no corpus at {CORPUS}")
    owner = login_browser(app, "processagare")
    stored = refused = 0
    for path in files:
        response = owner.post(
            "/workspace/upload",
            [("bpmn", _file(path.read_bytes(), path.name))],
            content_type="multipart/form-data",
        )
        assert response.status_code in (303, 422), (path.name, response.status_code)
        if response.status_code == 422:
            refused += 1
            page = response.get_data(as_text=True)
            assert 'class="error-summary"' in page and 'class="problem-list"' in page, path.name
            continue
        stored += 1
        version_url = response.headers["Location"]
        for suffix in ("", "/edit", "/diagram", "/model.json", "/download"):
            status = owner.client.get(version_url + suffix).status_code
            assert status == 200, (path.name, suffix, status)
    assert stored and stored + refused == len(files)
