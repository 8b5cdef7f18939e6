"""Hardening: headers, CORS, hidden files, malformed ids, errors, redirects, sessions, XSS.

security.md §1 rows 3-6, 14, 18, 20-22, 37, 39, 41 and §6 cases 1, 11-12, 19, 21-23.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from matrix_kit import (
    Browser,
    actor_of,
    anonymous_browser,
    as_form,
    bearer,
    csrf_of,
    drive_case,
    hidden_value,
    login_browser,
    scenario,
    unit_id_of,
)
from sqlalchemy import select

from engine import actions
from engine.models import OpenTask
from engine.processes import latest_published, model_for
from forms import load_form_spec

EVIL = "https://evil.example"
LEAKS = ("Traceback", 'File "', "SELECT ", "INSERT ", "sqlalchemy", "psycopg", "/work/", ".py")


def _header_problems(url: str, response: Any) -> list[str]:
    headers = response.headers
    problems = []
    csp = headers.get("Content-Security-Policy", "")
    if not csp:
        problems.append("no Content-Security-Policy")
    if "unsafe-inline" in csp or "unsafe-eval" in csp:
        problems.append(f"CSP allows unsafe-inline/unsafe-eval: {csp}")
    if "frame-ancestors 'none'" not in csp:
        problems.append(f"CSP without frame-ancestors 'none': {csp!r}")
    if headers.get("X-Content-Type-Options") != "nosniff":
        problems.append("no X-Content-Type-Options: nosniff")
    if headers.get("Referrer-Policy") != "same-origin":
        problems.append(f"Referrer-Policy {headers.get('Referrer-Policy')!r}")
    hsts = re.search(r"max-age=(\d+)", headers.get("Strict-Transport-Security", ""))
    if not hsts or int(hsts.group(1)) < 31536000:
        problems.append("no HSTS of at least a year")
    if "no-store" not in headers.get("Cache-Control", ""):
        problems.append(f"Cache-Control {headers.get('Cache-Control')!r}, expected no-store")
    if "Access-Control-Allow-Origin" in headers:
        problems.append(f"CORS header {headers['Access-Control-Allow-Origin']!r}")
    return [f"{url}: {p}" for p in problems]


def test_security_headers_on_pages_and_pdf_downloads(app: Flask) -> None:
    db = app.extensions["lotsen_db"]()
    ids = drive_case(app, db, "vuxenenheten", approve=True)
    db.close()
    browser = login_browser(app, "handlaggare")
    origin = {"Origin": EVIL}
    problems = []
    pages = ["/", "/cases", f"/cases/{ids['case_id']}", f"/documents/{ids['document_id']}"]
    for url in pages:
        response = browser.client.get(url, headers=origin)
        assert response.status_code == 200, url
        problems += _header_problems(url, response)
    pdf = browser.client.get(f"/documents/{ids['document_id']}")
    assert pdf.data.startswith(b"%PDF")
    assert pdf.headers["Content-Disposition"].startswith("attachment")
    api = app.test_client()
    token = {**bearer(app, "handlaggare"), **origin}
    for url in ("/api/v1/me", f"/api/v1/decisions/{ids['decision_id']}/pdf"):
        response = api.get(url, headers=token)
        assert response.status_code == 200, url
        problems += _header_problems(url, response)
    for url in ("/login", "/no-such-page"):
        problems += _header_problems(url, app.test_client().get(url, headers=origin))
    assert not problems, "\n".join(problems)


def test_no_cors_for_other_origins(app: Flask) -> None:
    client = app.test_client()
    preflight = {
        "Origin": EVIL,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, x-csrftoken",
    }
    for url in ("/api/v1/cases", "/api/v1/me", "/login", "/"):
        response = client.options(url, headers=preflight)
        assert "Access-Control-Allow-Origin" not in response.headers, url
        assert "Access-Control-Allow-Credentials" not in response.headers, url
    response = client.get("/api/v1/me", headers={**bearer(app, "handlaggare"), "Origin": EVIL})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize(
    "url",
    [
        "/.git/HEAD",
        "/.git/config",
        "/instance/lotsen.db",
        "/instance/",
        "/app.db",
        "/lotsen.db",
        "/console",
        "/static/",
        "/static/../app.py",
        "/static/../../wsgi.py",
        "/static/%2e%2e/%2e%2e/wsgi.py",
        "/static/..%2f..%2fwsgi.py",
        "/static/..%5c..%5cwsgi.py",
        "/.env",
        "/pyproject.toml",
    ],
)
def test_hidden_files_and_debug_console_are_404(client: Any, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 404, url
    body = response.get_data(as_text=True)
    assert "create_app" not in body and "[tool." not in body and "ref: refs" not in body


def _assert_generic_error(url: str, response: Any) -> None:
    """No 500 at all; if there is one, it is the generic page with an error id."""
    body = response.get_data(as_text=True)
    leaked = [word for word in LEAKS if word in body]
    assert not leaked, f"{url}: the error page shows {leaked}"
    if response.status_code == 500:
        assert re.search(r"[0-9a-f]{12}", body), f"{url}: a 500 without an error id"
    assert response.status_code != 500, f"{url}: server error on malformed input"


@pytest.mark.parametrize("url", ["/cases/%ff", "/tasks/%ff", "/api/v1/cases/abc"])
def test_malformed_ids_give_no_server_error(app: Flask, url: str) -> None:
    browser = login_browser(app, "handlaggare")
    headers = bearer(app, "handlaggare") if url.startswith("/api/") else {}
    response = browser.client.get(url, headers=headers)
    _assert_generic_error(url, response)
    assert response.status_code in (400, 404)


#: Ids a URL converter accepts but the database cannot hold (a 32-bit id, a varchar(36) task
#: id, a NUL byte): each must be a plain 404, on SQLite and PostgreSQL alike.
OUT_OF_RANGE = [
    ("GET", "/cases/2147483648"),
    ("GET", "/cases/99999999999999999999"),
    ("GET", "/decisions/9223372036854775808"),
    ("GET", "/documents/2147483648"),
    ("POST", "/cases/2147483648/journal"),
    ("POST", "/decisions/2147483648"),
    ("GET", "/tasks/%00"),
    ("GET", "/tasks/" + "a" * 100),
    ("POST", "/tasks/%00/claim"),
    ("POST", "/tasks/" + "a" * 100),
    ("GET", "/api/v1/cases/99999999999999999999"),
    ("GET", "/api/v1/tasks/%00"),
    ("GET", "/api/v1/tasks/" + "a" * 100),
]


def test_out_of_range_ids_are_404_not_500(app: Flask) -> None:
    browser = login_browser(app, "handlaggare")
    token = bearer(app, "handlaggare")
    problems = []
    for method, url in OUT_OF_RANGE:
        if url.startswith("/api/"):
            response = browser.client.open(url, method=method, headers=token)
        elif method == "POST":
            response = browser.post(url, {"title": "x", "text": "y"})
        else:
            response = browser.client.get(url)
        body = response.get_data(as_text=True)
        leaked = [word for word in LEAKS if word in body]
        # A NUL byte is refused up front for every request (400); other ids are a 404.
        expected = 400 if "%00" in url else 404
        if response.status_code != expected or leaked:
            problems.append(f"{method} {url[:40]}: {response.status_code} {leaked or ''}")
    assert not problems, "malformed ids must be a plain 404 (NUL: 400):\n" + "\n".join(problems)


def test_login_with_nul_byte_is_refused_cleanly(app: Flask) -> None:
    browser = anonymous_browser(app)
    response = browser.post("/login", {"username": "hand\x00laggare", "password": "demo"})
    _assert_generic_error("/login", response)
    assert response.status_code in (400, 401, 422)


def test_unexpected_error_is_a_generic_page_with_an_error_id(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine import queries

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError('SELECT secret FROM users -- File "/work/main/engine/queries.py"')

    browser = login_browser(app, "handlaggare")
    monkeypatch.setattr(queries, "inbox", explode)
    for url, headers in (("/", {}), ("/api/v1/tasks", bearer(app, "handlaggare"))):
        response = browser.client.get(url, headers=headers)
        assert response.status_code == 500, url
        body = response.get_data(as_text=True)
        assert not [word for word in LEAKS if word in body], body[:500]
        assert re.search(r"[0-9a-f]{12}", body), "no error id"
        assert response.headers.get("Cache-Control") == "no-store"


def test_access_rule_failure_fails_closed(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the policy function itself breaks, the answer is an error, never the case."""
    from engine import access

    db = app.extensions["lotsen_db"]()
    ids = drive_case(app, db, "vuxenenheten", approve=True)
    db.close()
    browser = login_browser(app, "handlaggare")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("policy store unavailable")

    monkeypatch.setattr(access, "access_reason", broken)
    for url in (f"/cases/{ids['case_id']}", f"/documents/{ids['document_id']}"):
        response = browser.client.get(url)
        assert response.status_code in (403, 404, 500), url
        assert b"Nicu" not in response.data and not response.data.startswith(b"%PDF")
    api = app.test_client().get(
        f"/api/v1/cases/{ids['case_id']}", headers=bearer(app, "handlaggare")
    )
    assert api.status_code in (403, 404, 500) and b"Nicu" not in api.data


# --- login redirects, sessions, cookies ----------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/\t/evil.example",
        "https:evil.example",
        " //evil.example",
    ],
)
def test_login_redirect_stays_on_site(app: Flask, target: str) -> None:
    browser = anonymous_browser(app)
    response = browser.post(
        f"/login?next={quote(target, safe='')}", {"username": "handlaggare", "password": "demo"}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/", response.headers["Location"]


def test_login_redirect_to_an_internal_page_is_kept(app: Flask) -> None:
    browser = anonymous_browser(app)
    response = browser.post("/login?next=/cases", {"username": "handlaggare", "password": "demo"})
    assert response.status_code == 303 and response.headers["Location"] == "/cases"


def _session_cookie(app: Flask, client: Any) -> str | None:
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    return cookie.value if cookie is not None else None


def test_old_session_cookie_is_dead_after_logout(app: Flask) -> None:
    browser = login_browser(app, "handlaggare")
    name = app.config["SESSION_COOKIE_NAME"]
    stolen = _session_cookie(app, browser.client)
    assert stolen
    response = browser.post("/logout", {})
    assert response.status_code == 303
    replay = app.test_client()
    replay.set_cookie(name, stolen)
    page = replay.get("/")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    assert replay.get("/api/v1/me").status_code == 401
    assert replay.get("/cases").status_code == 302


def test_session_id_changes_at_login(app: Flask) -> None:
    browser = anonymous_browser(app)  # has a pre-login session (it holds the CSRF token)
    before = _session_cookie(app, browser.client)
    assert before, "the login page should start a session for its CSRF token"
    response = browser.post("/login", {"username": "handlaggare", "password": "demo"})
    assert response.status_code == 303
    after = _session_cookie(app, browser.client)
    assert after and after != before
    planted = app.test_client()  # an attacker who planted the pre-login id
    planted.set_cookie(app.config["SESSION_COOKIE_NAME"], before)
    assert planted.get("/").status_code == 302


def _set_cookie_flags(response: Any, name: str) -> dict[str, str | bool]:
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(f"{name}="):
            parts = [p.strip() for p in header.split(";")[1:]]
            flags: dict[str, str | bool] = {}
            for part in parts:
                key, _, value = part.partition("=")
                flags[key.lower()] = value or True
            return flags
    raise AssertionError(f"no Set-Cookie for {name}")


def test_session_cookie_flags(app: Flask) -> None:
    client = app.test_client()
    name = app.config["SESSION_COOKIE_NAME"]
    token = csrf_of(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"username": "handlaggare", "password": "demo", "csrf_token": token}
    )
    flags = _set_cookie_flags(response, name)
    assert flags.get("httponly") is True
    assert str(flags.get("samesite", "")).lower() in ("lax", "strict")
    assert flags.get("path") == "/" and "domain" not in flags


def test_production_session_cookie_is_host_prefixed_and_secure(tmp_path: Path) -> None:
    """With production settings the cookie is ``__Host-``, Secure, HttpOnly, SameSite."""
    import base64

    from engine.db import Base, unit_of_work
    from engine.demo import load_demo_data
    from webapp import create_app

    app = create_app(
        {
            "LOTSEN_DATABASE_URL": f"sqlite:///{tmp_path / 'prod.db'}",
            "LOTSEN_ENV": "production",
            "LOTSEN_SECRET_KEY": "x" * 48,
            "LOTSEN_DATA_KEY": base64.urlsafe_b64encode(b"k" * 32).decode(),
            "LOTSEN_INSTANCE_DIR": str(tmp_path),
        }
    )
    Base.metadata.create_all(app.extensions["lotsen_engine"])
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        load_demo_data(db)
    name = app.config["SESSION_COOKIE_NAME"]
    assert name.startswith("__Host-")
    client = app.test_client()
    base = "https://localhost"
    token = csrf_of(client.get("/login", base_url=base).get_data(as_text=True))
    response = client.post(
        "/login",
        base_url=base,
        data={"username": "handlaggare", "password": "demo", "csrf_token": token},
        headers={"Referer": f"{base}/login"},
    )
    assert response.status_code == 303, response.status_code
    flags = _set_cookie_flags(response, name)
    assert flags.get("secure") is True and flags.get("httponly") is True
    assert str(flags.get("samesite", "")).lower() in ("lax", "strict")
    assert flags.get("path") == "/" and "domain" not in flags
    app.extensions["lotsen_engine"].dispose()


def test_wrong_password_and_unknown_user_look_the_same(app: Flask) -> None:
    answers = []
    for username, password in (("handlaggare", "wrong-password"), ("ingen.sadan", "demo")):
        browser = anonymous_browser(app)
        response = browser.post("/login", {"username": username, "password": password})
        body = response.get_data(as_text=True).replace(username, "USERNAME")
        body = re.sub(r'value="[^"]{40,}"', 'value="TOKEN"', body)
        answers.append((response.status_code, body))
    assert answers[0][0] == answers[1][0] == 401
    assert answers[0][1] == answers[1][1]


# --- stored XSS and template injection -----------------------------------------------------------

XSS = "<svg onload=alert(1)>"
SSTI = "tpl-{{7*7}}-end"
PAYLOAD = f"{XSS} {SSTI}"


def _check_inert(url: str, page: str) -> None:
    assert XSS not in page, f"{url}: the raw tag is on the page"
    assert "&lt;svg onload=alert(1)&gt;" in page, f"{url}: the payload is not shown escaped"
    assert SSTI in page, f"{url}: {{{{7*7}}}} is not shown literally"
    assert "tpl-49-end" not in page, f"{url}: user input was evaluated as a template"


def _fresh_case(app: Flask) -> tuple[int, str]:
    """A new case of Vuxenenheten at its first step (the screening); (case id, task id)."""
    db = app.extensions["lotsen_db"]()
    try:
        version = latest_published(db, "identification")
        start_form = load_form_spec(version.forms[model_for(version).start_form_key])
        case = actions.start_case(
            db,
            actor_of(db, "handlaggare"),
            procedure="identification",
            unit_id=unit_id_of(db, "vuxenenheten"),
            intake={**start_form.empty_data(), **scenario()["intake"]},
            subject_fields=start_form.subject_fields,
        )
        task = db.execute(
            select(OpenTask).where(OpenTask.case_id == case.id, OpenTask.status == "open")
        ).scalar_one()
        db.commit()
        return case.id, task.id
    finally:
        db.close()


def _complete(browser: Browser, task_id: str, data: dict[str, Any]) -> Any:
    page = browser.client.get(f"/tasks/{task_id}").get_data(as_text=True)
    form = [
        ("version", hidden_value(page, "version")),
        ("submission_id", hidden_value(page, "submission_id")),
        ("action", "complete"),
        *as_form(data),
    ]
    return browser.post(f"/tasks/{task_id}", form)


def test_stored_xss_and_template_syntax_are_shown_inert(app: Flask) -> None:
    case_id, task_id = _fresh_case(app)
    browser = login_browser(app, "handlaggare")
    steps = scenario()["steps"]
    # a text field of the screening form (its journal note reaches the case page)
    response = _complete(browser, task_id, {**steps[0]["data"], "journal_note": PAYLOAD})
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    next_task = response.headers["Location"].rsplit("/", 1)[1]
    # a draft of the next step's free-text field comes back into the form
    page = browser.client.get(f"/tasks/{next_task}").get_data(as_text=True)
    draft = [
        ("action", "draft"),
        ("version", hidden_value(page, "version")),
        ("conversation_notes", PAYLOAD),
        ("conversation_place_description", PAYLOAD),
    ]
    assert browser.post(f"/tasks/{next_task}", draft).status_code == 303
    # and a free journal note
    note = browser.post(f"/cases/{case_id}/journal", {"title": PAYLOAD, "text": PAYLOAD})
    assert note.status_code == 303
    supervisor = login_browser(app, "arbetsledare")
    for client, url in (
        (browser.client, f"/tasks/{next_task}"),
        (browser.client, f"/cases/{case_id}"),
        (supervisor.client, f"/cases/{case_id}"),
        (browser.client, f"/tasks/{task_id}"),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        page = response.get_data(as_text=True)
        if url == f"/tasks/{task_id}":  # the finished step: never the raw tag
            assert XSS not in page and "tpl-49-end" not in page
            continue
        _check_inert(url, page)
    api = app.test_client().get(f"/api/v1/tasks/{next_task}", headers=bearer(app, "handlaggare"))
    assert api.status_code == 200 and api.mimetype == "application/json"
