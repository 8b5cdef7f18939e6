"""security.md §6: the attack and fault cases 1, 4, 5, 7-12, 18, 19 and 21-25, one test each.

Each test sends the case's own input from §6 through the public surface (HTTP pages, the API,
the CLI, the database as the app's role) and checks the safe outcome it names. Several cases
are also covered in depth elsewhere (tests/webapp/test_hardening.py, test_csrf.py,
test_route_matrix.py, test_auth_*.py, tests/engine/test_audit_protection.py,
tests/reports/test_reports_ssrf.py); these tests replay the exact §6 input once more so each
case has one named, black-box test. Cases 2, 3, 6, 13, 17, 20 are in
test_attack_cases_sso_search.py, 14-16 in tests/engine/workspace/test_attack_cases.py and
26-30 in test_reliability.py.
"""

from __future__ import annotations

import io
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from engine_testkit import (
    BASIC_INTAKE,
    SCREENING,
    app_on,
    complete_committed,
    newest_decision,
    run_to_assessment,
    start_committed,
)
from flask import Flask
from matrix_kit import bearer, drive_case, login_browser
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from engine.audit_protection import grant_app_role
from engine.db import unit_of_work
from engine.models import (
    AuditEntry,
    Case,
    Decision,
    Document,
    OpenTask,
    ProcessInstance,
    RoleAssignment,
    Subject,
    User,
    WebSession,
)
from tests.conftest import actor, login
from tests.security.security_kit import count_audit, post_completion, task_form
from tests.webapp.test_pages_kit import get, html

EVIL = "https://evil.example"
LEAKS = ("Traceback", 'File "', "SELECT ", "sqlalchemy", "psycopg", "/work/", '.py"')
XSS = "<svg onload=alert(1)>"
XSS2 = '"><img src=x onerror=alert(1)>'
TEMPLATE = "{{7*7}} {{ config }}"


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    yield from app_on(database_url, tmp_path)


def _first_open_task(app: Flask, case_id: int) -> OpenTask:
    with app.extensions["lotsen_db"]() as s:
        return s.execute(
            select(OpenTask).where(OpenTask.case_id == case_id, OpenTask.status == "open")
        ).scalar_one()


def _approved_decision(app: Flask, *, name: str, reasons: str) -> dict[str, int]:
    """A case with ``name`` as the person and ``reasons`` in the approved D-A6 (PDF filed)."""
    from webapp.services import decide_with_document

    case_id = start_committed(app, intake={**BASIC_INTAKE, "subject_name": name})
    run_to_assessment(app, case_id)
    complete_committed(
        app,
        case_id,
        "task_propose_assessment",
        {"assessment_outcome": "PRESUMED_EXPLOITATION_4_1B", "assessment_reasons": reasons},
    )
    with unit_of_work(app.extensions["lotsen_db"]) as s:
        decision = newest_decision(s, case_id, "D-A6")
        with app.app_context():
            decide_with_document(
                s, actor(s, "arbetsledare"), decision.id, approve=True, comment=None
            )
        decision_id = decision.id
    with app.extensions["lotsen_db"]() as s:
        document_id = s.execute(
            select(Document.id).where(Document.decision_id == decision_id)
        ).scalar_one()
    return {"case_id": case_id, "decision_id": decision_id, "document_id": document_id}


def _pdf_text(content: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(content)).pages)


# --- 1 --------------------------------------------------------------------------------------------


def test_case_01_cookie_replayed_after_logout_is_dead(app: Flask) -> None:
    browser = login_browser(app, "handlaggare")
    name = app.config["SESSION_COOKIE_NAME"]
    cookie = browser.client.get_cookie(name)
    assert cookie is not None
    stolen = cookie.value
    assert browser.client.get("/cases").status_code == 200
    assert browser.post("/logout").status_code == 303
    with app.extensions["lotsen_db"]() as s:
        import hashlib

        digest = hashlib.sha256(stolen.encode()).hexdigest()
        assert s.execute(select(WebSession).where(WebSession.id_hash == digest)).first() is None
    thief = app.test_client()
    thief.set_cookie(name, stolen)
    response = thief.get("/cases")
    assert response.status_code in (302, 303, 401)
    if response.status_code != 401:
        assert "/login" in response.headers["Location"]
    api = thief.get("/api/v1/me")
    assert api.status_code == 401


# --- 4 --------------------------------------------------------------------------------------------


def test_case_04_walking_case_ids_of_another_unit_gives_404_and_logged_denials(
    app: Flask,
) -> None:
    with app.extensions["lotsen_db"]() as db:
        other = drive_case(app, db, "barn_och_unga", approve=False)["case_id"]
        own = drive_case(app, db, "vuxenenheten", approve=False)["case_id"]
    browser = login_browser(app, "handlaggare")
    assert browser.client.get(f"/cases/{own}").status_code == 200  # the probe can succeed
    walk = sorted({other, *range(max(1, other - 1000), other + 1001, 50), other + 1, other - 1})
    walk = [i for i in walk if i > 0 and i != own]
    denied_before = count_audit(app, "case:denied")
    statuses = {i: browser.client.get(f"/cases/{i}").status_code for i in walk}
    assert set(statuses.values()) == {404}, statuses
    with app.extensions["lotsen_db"]() as s:
        rows = s.execute(
            select(AuditEntry).where(
                AuditEntry.action == "case:denied", AuditEntry.object_id == str(other)
            )
        ).scalars()
        entry = next(iter(rows))
        assert entry.outcome == "denied" and entry.case_id == other
    assert count_audit(app, "case:denied") - denied_before == len(walk)


# --- 5 --------------------------------------------------------------------------------------------


def test_case_05_another_units_decision_pdf_is_404_and_not_at_a_static_url(app: Flask) -> None:
    with app.extensions["lotsen_db"]() as db:
        ids = drive_case(app, db, "barn_och_unga", approve=True)
        document = db.get(Document, ids["document_id"])
        assert document is not None
        filename = document.filename
    document_id = ids["document_id"]
    owner = login_browser(app, "arbetsledare.barn")
    ok = owner.client.get(f"/documents/{document_id}")
    assert ok.status_code == 200 and ok.mimetype == "application/pdf"  # it exists
    caseworker = login_browser(app, "handlaggare")
    for url in (
        f"/documents/{document_id}",
        f"/documents/{document_id}.pdf",
        f"/static/{filename}",
        f"/static/documents/{document_id}.pdf",
        f"/documents/{filename}",
    ):
        response = caseworker.client.get(url)
        assert response.status_code == 404, url
        assert not response.get_data().startswith(b"%PDF"), url
    api = app.test_client().get(
        f"/api/v1/documents/{document_id}", headers=bearer(app, "handlaggare")
    )
    assert api.status_code == 404


# --- 7 --------------------------------------------------------------------------------------------


def test_case_07_caseworker_posting_the_supervisor_approval_is_refused(app: Flask) -> None:
    with app.extensions["lotsen_db"]() as db:
        ids = drive_case(app, db, "vuxenenheten", approve=False)
    browser = login_browser(app, "handlaggare")
    response = browser.post(f"/decisions/{ids['decision_id']}", {"approve": "Approve"})
    assert response.status_code == 403
    api = app.test_client().post(
        f"/api/v1/decisions/{ids['decision_id']}/approve",
        headers=bearer(app, "handlaggare"),
        json={},
    )
    assert api.status_code in (403, 404)
    with app.extensions["lotsen_db"]() as s:
        decision = s.get(Decision, ids["decision_id"])
        assert decision is not None and decision.status == "proposed"
        assert decision.decided_by_id is None
        assert not s.execute(select(Document).where(Document.decision_id == decision.id)).first()


# --- 8 --------------------------------------------------------------------------------------------


def test_case_08_extra_role_unit_and_assignee_fields_are_ignored(app: Flask) -> None:
    case_id = start_committed(app)
    task = _first_open_task(app, case_id)
    with app.extensions["lotsen_db"]() as s:
        case = s.get(Case, case_id)
        assert case is not None
        unit_before = case.unit_id
        other_unit = 2 if unit_before != 2 else 1
        admin_id = s.execute(select(User.id).where(User.username == "admin")).scalar_one()
    client = login(app.test_client(), "handlaggare")
    page, fields = task_form(client, task.id)
    extra = {"role": "admin", "unit_id": str(other_unit), "assignee": str(admin_id)}
    response = post_completion(client, task.id, page, fields, {**SCREENING, **extra})
    assert response.status_code == 303, html(response)[:1500]
    with app.extensions["lotsen_db"]() as s:
        case = s.get(Case, case_id)
        assert case is not None and case.unit_id == unit_before
        user = s.execute(select(User).where(User.username == "handlaggare")).scalar_one()
        roles = s.execute(select(RoleAssignment.role).where(RoleAssignment.user_id == user.id))
        assert "admin" not in set(roles.scalars())
        nxt = s.execute(
            select(OpenTask).where(OpenTask.case_id == case_id, OpenTask.status == "open")
        ).scalar_one()
        assert nxt.assignee_id != admin_id and nxt.unit_id == unit_before
        done = s.get(OpenTask, task.id)
        assert done is not None and done.completed_by_id == user.id
        instance = s.execute(
            select(ProcessInstance).where(ProcessInstance.case_id == case_id)
        ).scalar_one()
        state = instance.state
    assert '"role": "admin"' not in state and '"role":"admin"' not in state
    assert '"assignee"' not in state


# --- 9 and 10 -------------------------------------------------------------------------------------


def test_case_09_cross_site_auto_submit_of_complete_task_is_refused(app: Flask) -> None:
    case_id = start_committed(app)
    task = _first_open_task(app, case_id)
    victim = login(app.test_client(), "handlaggare")
    page, fields = task_form(victim, task.id)
    # the attacker's page knows the form's shape but not the session's CSRF token
    from werkzeug.datastructures import MultiDict

    from tests.webapp.test_pages_kit import as_form

    forged = MultiDict([*fields, ("action", "complete"), *as_form(SCREENING)])
    response = victim.post(
        f"/tasks/{task.id}",
        data=forged,
        headers={"Origin": EVIL, "Referer": f"{EVIL}/attack.html"},
    )
    assert response.status_code in (400, 403)
    api = victim.post(
        f"/api/v1/tasks/{task.id}/complete", json={"data": SCREENING}, headers={"Origin": EVIL}
    )
    assert api.status_code in (400, 401, 403)
    assert _first_open_task(app, case_id).id == task.id
    assert count_audit(app, "task:completed", task.id) == 0
    _ = page


def test_case_10_no_token_or_another_sessions_token_is_400(app: Flask) -> None:
    case_id = start_committed(app)
    task = _first_open_task(app, case_id)
    extra_id = f"handlaggare.x{uuid.uuid4().hex[:4]}"
    from tests.security.security_kit import extra_caseworker

    extra_caseworker(app, extra_id)
    victim = login(app.test_client(), "handlaggare")
    other = login(app.test_client(), extra_id)
    other_token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', get(other, "/"))
    assert other_token
    page, fields = task_form(victim, task.id)
    from werkzeug.datastructures import MultiDict

    from tests.webapp.test_pages_kit import as_form

    body = [*fields, ("action", "complete"), *as_form(SCREENING)]
    without = victim.post(f"/tasks/{task.id}", data=MultiDict(body))
    foreign = victim.post(
        f"/tasks/{task.id}", data=MultiDict([("csrf_token", other_token.group(1)), *body])
    )
    assert (without.status_code, foreign.status_code) == (400, 400)
    assert count_audit(app, "task:completed", task.id) == 0
    # the same post with the victim's own token goes through: the refusals were the token
    assert post_completion(victim, task.id, page, fields, SCREENING).status_code == 303


# --- 11, 12, 18 -----------------------------------------------------------------------------------


def _check_inert(url: str, page: str) -> None:
    assert XSS not in page and "<img src=x onerror" not in page, f"{url}: raw markup"
    assert "onload=alert(1)>" not in page.replace("&lt;svg onload=alert(1)&gt;", ""), url


def test_case_11_stored_xss_is_inert_for_the_supervisor_and_in_the_pdf(app: Flask) -> None:
    ids = _approved_decision(app, name=f"{XSS} Namn", reasons=f"Skäl {XSS} {XSS2}")
    case_id = ids["case_id"]
    browser = login_browser(app, "handlaggare")
    note = browser.post(f"/cases/{case_id}/journal", {"title": XSS, "text": XSS2})
    assert note.status_code == 303
    supervisor = login(app.test_client(), "arbetsledare")
    for url in (f"/cases/{case_id}", f"/decisions/{ids['decision_id']}"):
        page = get(supervisor, url)
        _check_inert(url, page)
        assert "&lt;svg onload=alert(1)&gt;" in page or "&lt;svg" in page, url
    pdf = supervisor.get(f"/documents/{ids['document_id']}")
    assert pdf.status_code == 200
    content = pdf.get_data()
    assert b"/JavaScript" not in content and b"/JS " not in content
    assert "<svg onload=alert(1)>" in _pdf_text(content).replace("\n", " ")  # shown literally


def test_case_12_template_syntax_is_shown_literally_without_secrets(app: Flask) -> None:
    ids = _approved_decision(app, name="Mall Person", reasons=f"Skäl {TEMPLATE}")
    supervisor = login(app.test_client(), "arbetsledare")
    secret = app.config["SECRET_KEY"]
    page = get(supervisor, f"/decisions/{ids['decision_id']}")
    assert "{{7*7}}" in page and "&lt;Config" not in page and secret not in page
    text = _pdf_text(supervisor.get(f"/documents/{ids['document_id']}").get_data())
    flat = text.replace("\n", " ")
    assert "{{7*7}}" in flat and "{{ config }}" in flat
    assert "Skäl 49" not in flat and secret not in flat and "SECRET_KEY" not in flat


class _Counter:
    def __init__(self) -> None:
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits.append(self.path)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"SSRF-CANARY")

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_case_18_urls_in_pdf_fields_fetch_nothing(app: Flask) -> None:
    counter = _Counter()
    try:
        hostname = (
            Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").exists() else ""
        )
        reasons = (
            '<img src="http://169.254.169.254/latest/meta-data/"> '
            f'<img src="{counter.url}/beacon.png"> '
            '<img src="file:///etc/hostname"> '
            f'<link rel="attachment" href="{counter.url}/leak"> '
            f'<link rel="stylesheet" href="{counter.url}/x.css">'
        )
        ids = _approved_decision(app, name="Url Person", reasons=reasons)
        supervisor = login(app.test_client(), "arbetsledare")
        content = supervisor.get(f"/documents/{ids['document_id']}").get_data()
    finally:
        counter.close()
    assert counter.hits == []  # no outbound request reached our listener
    assert b"SSRF-CANARY" not in content
    assert b"/EmbeddedFile" not in content
    text = _pdf_text(content)
    if hostname:
        assert hostname not in text.replace("file:///etc/hostname", "")
    assert "169.254.169.254" in text.replace("\n", "")  # shown as text, never fetched


# --- 19, 21, 22, 23 -------------------------------------------------------------------------------


def test_case_19_login_next_to_another_site_goes_home(app: Flask) -> None:
    client = app.test_client()
    page = get(client, "/login?next=//evil.example")
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token
    response = client.post(
        "/login?next=//evil.example",
        data={
            "username": "handlaggare",
            "password": "demo",
            "csrf_token": token.group(1),
            "next": "//evil.example",
        },
    )
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location in ("/", "http://localhost/"), location
    assert "evil" not in location


def test_case_21_malformed_id_gives_a_generic_error_without_internals(app: Flask) -> None:
    browser = login_browser(app, "handlaggare")
    for url, headers in (
        ("/cases/%ff", {}),
        ("/tasks/%ff", {}),
        ("/api/v1/cases/%ff", bearer(app, "handlaggare")),
    ):
        response = browser.client.get(url, headers=headers)
        body = response.get_data(as_text=True)
        assert not [w for w in LEAKS if w in body], (url, body[:500])
        assert response.status_code in (400, 404, 500), url
        if response.status_code == 500:
            assert re.search(r"[0-9a-f]{12}", body), f"{url}: no error id"


def test_case_22_git_database_console_and_traversal_are_404(app: Flask) -> None:
    client = app.test_client()
    for url in ("/.git/HEAD", "/instance/app.db", "/console", "/static/../app.py"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert b"ref: refs" not in response.get_data() and b"SQLite" not in response.get_data()


def test_case_23_headers_on_cases_and_a_pdf_download(app: Flask) -> None:
    with app.extensions["lotsen_db"]() as db:
        ids = drive_case(app, db, "vuxenenheten", approve=True)
    browser = login_browser(app, "handlaggare")
    for url in ("/cases", f"/documents/{ids['document_id']}"):
        response = browser.client.get(url, headers={"Origin": EVIL})
        assert response.status_code == 200, url
        h = response.headers
        assert "no-store" in h.get("Cache-Control", ""), url
        csp = h.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, url
        hsts = re.search(r"max-age=(\d+)", h.get("Strict-Transport-Security", ""))
        assert hsts and int(hsts.group(1)) >= 31536000, url
        assert h.get("X-Content-Type-Options") == "nosniff", url
        assert h.get("Referrer-Policy") == "same-origin", url
        assert "Access-Control-Allow-Origin" not in h, url


# --- 24, 25 ---------------------------------------------------------------------------------------


def test_case_24_the_app_role_cannot_change_the_log_and_a_superuser_edit_is_detected(
    app: Flask, database_url: str
) -> None:
    start_committed(app)
    engine = app.extensions["lotsen_engine"]
    if database_url.startswith("postgresql"):
        role = f"lotsen_app_{uuid.uuid4().hex[:10]}"
        with engine.begin() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
            conn.execute(text(f'CREATE ROLE "{role}" NOLOGIN'))
            conn.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))
            assert grant_app_role(conn, role)
        try:
            with pytest.raises(DBAPIError, match="permission denied"), engine.begin() as conn:
                conn.execute(text(f'SET LOCAL ROLE "{role}"'))
                conn.execute(text("UPDATE audit_log SET actor_id = 999 WHERE seq = 1"))
        finally:
            with engine.begin() as conn:
                conn.execute(text(f'DROP OWNED BY "{role}"'))
                conn.execute(text(f'DROP ROLE "{role}"'))
        with engine.begin() as conn:  # a superuser switches the triggers off and edits a row
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            conn.execute(text("UPDATE audit_log SET actor_id = 999 WHERE seq = 2"))
    else:
        with engine.begin() as conn:  # SQLite: whoever holds the file edits a row
            conn.execute(text("UPDATE audit_log SET actor_id = 999 WHERE seq = 2"))
    result = app.test_cli_runner().invoke(args=["lotsen", "verify-audit"])
    assert result.exit_code == 1
    assert "BROKEN at entry 2" in result.output


def test_case_25_an_opened_record_is_one_complete_log_entry_for_the_reviewer(app: Flask) -> None:
    case_id = start_committed(app)
    with app.extensions["lotsen_db"]() as s:
        subject_id = s.execute(select(Subject.id).where(Subject.case_id == case_id)).scalar_one()
        number = s.execute(select(Case.number).where(Case.id == case_id)).scalar_one()
        unit = s.execute(select(Case.unit_id).where(Case.id == case_id)).scalar_one()
    browser = login_browser(app, "handlaggare")
    before = count_audit(app, "case:viewed")
    response = browser.client.get(f"/cases/{case_id}", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert response.status_code == 200
    assert count_audit(app, "case:viewed") == before + 1
    with app.extensions["lotsen_db"]() as s:
        entry = (
            s.execute(
                select(AuditEntry)
                .where(AuditEntry.action == "case:viewed", AuditEntry.case_id == case_id)
                .order_by(AuditEntry.seq.desc())
            )
            .scalars()
            .first()
        )
        assert entry is not None
        user_id = s.execute(select(User.id).where(User.username == "handlaggare")).scalar_one()
        assert entry.actor_id == user_id and entry.actor_name == "handlaggare"
        assert f"caseworker@{unit}" in (entry.actor_roles or "")  # the unit acted for
        assert entry.case_id == case_id and entry.purpose
        assert entry.source_ip == "10.1.2.3"
        assert entry.ts.tzinfo is not None and entry.ts.utcoffset() == UTC.utcoffset(None)
    # the reviewer finds it by the person (subject id) and by the case
    reviewer = login(app.test_client(), "granskare")
    by_subject = get(reviewer, f"/audit?subject={subject_id}&action=case:viewed")
    by_case = get(reviewer, f"/audit?case={number}&action=case:viewed")
    for page in (by_subject, by_case):
        assert "10.1.2.3" in page or number in page
