"""Fresh authentication for approving or returning a decision (security.md §1 row 10, §6
case 20): a password (and code) older than five minutes sends the browser to /reauth and the
API caller gets 401; nothing is decided until the user has confirmed, and nothing is lost."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from matrix_kit import drive_case
from sqlalchemy import select
from test_auth_kit import Clock, audit_actions, audit_seq, csrf, frozen, full_login

from engine.db import utcnow
from engine.login import FRESH_AUTH_SECONDS
from engine.models import Decision
from tests.conftest import csrf_token_from, totp_code
from webapp.tokens import issue_token

__all__ = ["frozen"]


def _proposal(app: Flask) -> dict[str, Any]:
    db = app.extensions["lotsen_db"]()
    try:
        return drive_case(app, db, "vuxenenheten", approve=False)
    finally:
        db.close()


def _status(app: Flask, decision_id: int) -> str:
    db = app.extensions["lotsen_db"]()
    try:
        return str(
            db.execute(select(Decision.status).where(Decision.id == decision_id)).scalar_one()
        )
    finally:
        db.close()


def _hidden_fields(page: str) -> list[tuple[str, str]]:
    return re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)


def test_a_stale_login_is_sent_to_reauth_and_then_approves(app: Flask, frozen: Clock) -> None:
    ids = _proposal(app)
    decision = ids["decision_id"]
    url = f"/decisions/{decision}"
    supervisor = full_login(app, "arbetsledare")
    token = csrf(supervisor, url)
    frozen.advance(seconds=FRESH_AUTH_SECONDS + 60)
    seq = audit_seq(app)

    response = supervisor.post(url, data={"approve": "Godkänn", "csrf_token": token})
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/reauth?next=")
    assert _status(app, decision) == "proposed", "nothing is decided before re-authentication"
    assert any(e.action == "auth:reauth_required" for e in audit_actions(app, seq))

    page = supervisor.get(response.headers["Location"])
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'name="password"' in html and 'name="code"' in html
    reauth_url = response.headers["Location"]
    wrong = supervisor.post(
        reauth_url,
        data={"password": "wrong", "code": "000000", "csrf_token": csrf_token_from(html)},
    )
    assert wrong.status_code == 401 and _status(app, decision) == "proposed"
    no_code = supervisor.post(
        reauth_url, data={"password": "demo", "code": "", "csrf_token": csrf_token_from(html)}
    )
    assert no_code.status_code == 401
    confirmed = supervisor.post(
        reauth_url,
        data={
            "password": "demo",
            "code": totp_code(app, "arbetsledare"),
            "csrf_token": csrf_token_from(html),
        },
    )
    assert confirmed.status_code == 200, "the kept form is offered for sending"
    kept = confirmed.get_data(as_text=True)
    fields = dict(_hidden_fields(kept))
    assert fields.get("approve") == "Godkänn" and "csrf_token" in fields
    assert f'action="{url}"' in kept
    assert _status(app, decision) == "proposed"

    sent = supervisor.post(url, data=fields)
    assert sent.status_code == 303, sent.status_code
    assert _status(app, decision) == "approved"
    assert any(e.action == "auth:reauthenticated" for e in audit_actions(app, seq))


def test_a_returned_decision_keeps_its_comment_through_reauth(app: Flask, frozen: Clock) -> None:
    ids = _proposal(app)
    decision = ids["decision_id"]
    url = f"/decisions/{decision}"
    supervisor = full_login(app, "arbetsledare")
    token = csrf(supervisor, url)
    frozen.advance(seconds=FRESH_AUTH_SECONDS + 1)
    comment = "Komplettera med <b>skälen</b> & källorna"
    response = supervisor.post(
        url, data={"return_": "Återvisa", "comment": comment, "csrf_token": token}
    )
    assert response.headers["Location"].startswith("/reauth")
    html = supervisor.get(response.headers["Location"]).get_data(as_text=True)
    confirmed = supervisor.post(
        response.headers["Location"],
        data={
            "password": "demo",
            "code": totp_code(app, "arbetsledare"),
            "csrf_token": csrf_token_from(html),
        },
    )
    kept = confirmed.get_data(as_text=True)
    assert "<b>skälen</b>" not in kept, "the kept comment is shown escaped"
    fields = dict(
        (name, value.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
        for name, value in _hidden_fields(kept)
    )
    assert fields["comment"] == comment
    assert supervisor.post(url, data=fields).status_code == 303
    assert _status(app, decision) == "returned"


def test_a_fresh_login_approves_directly(app: Flask) -> None:
    ids = _proposal(app)
    url = f"/decisions/{ids['decision_id']}"
    supervisor = full_login(app, "arbetsledare")
    response = supervisor.post(
        url, data={"approve": "Godkänn", "csrf_token": csrf(supervisor, url)}
    )
    assert response.status_code == 303 and not response.headers["Location"].startswith("/reauth")
    assert _status(app, ids["decision_id"]) == "approved"


def test_reauth_without_a_pending_form_goes_back_to_next(app: Flask) -> None:
    client = full_login(app, "handlaggare")
    page = client.get("/reauth?next=/cases").get_data(as_text=True)
    assert 'name="code"' not in page, "no code field for a user without a second factor"
    response = client.post(
        "/reauth?next=/cases", data={"password": "demo", "csrf_token": csrf_token_from(page)}
    )
    assert response.status_code == 303 and response.headers["Location"] == "/cases"
    evil = client.post(
        "/reauth?next=//evil.example",
        data={"password": "demo", "csrf_token": csrf_token_from(page)},
    )
    assert evil.headers["Location"] == "/"


def test_admin_actions_need_fresh_authentication_too(app: Flask, frozen: Clock) -> None:
    from test_auth_kit import user

    admin = full_login(app, "admin")
    token = csrf(admin, "/admin/users")
    frozen.advance(seconds=FRESH_AUTH_SECONDS + 1)
    response = admin.post(
        "/admin/users",
        data={"user_id": str(user(app, "huge").id), "action": "disable", "csrf_token": token},
    )
    assert response.status_code == 303 and response.headers["Location"].startswith("/reauth")
    assert user(app, "huge").active


def test_exporting_an_access_extract_needs_fresh_authentication(app: Flask, frozen: Clock) -> None:
    auditor = full_login(app, "granskare")
    token = csrf(auditor, "/audit")
    frozen.advance(seconds=FRESH_AUTH_SECONDS + 1)
    response = auditor.post("/audit/extract", data={"subject": "1", "csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"].startswith("/reauth")


# --- the API -------------------------------------------------------------------------------------


def _bearer(app: Flask, username: str, age: int) -> dict[str, str]:
    auth_time = int(utcnow().timestamp()) - age
    token = issue_token(app.extensions["lotsen"], username, auth_time=auth_time)
    return {"Authorization": f"Bearer {token}"}


def test_api_approval_needs_a_recently_issued_token(app: Flask) -> None:
    ids = _proposal(app)
    decision = ids["decision_id"]
    api = app.test_client()
    stale = _bearer(app, "arbetsledare", FRESH_AUTH_SECONDS + 30)
    for action, body in (("approve", {}), ("return", {"comment": "Komplettera"})):
        response = api.post(f"/api/v1/decisions/{decision}/{action}", json=body, headers=stale)
        assert response.status_code == 401, response.get_data(as_text=True)
        assert "Fresh authentication required" in response.get_json()["message"]
        challenge = response.headers["WWW-Authenticate"]
        assert 'error="insufficient_user_authentication"' in challenge
        assert f"max_age={FRESH_AUTH_SECONDS}" in challenge
    assert _status(app, decision) == "proposed"
    # the stale token still reads
    assert api.get(f"/api/v1/decisions/{decision}", headers=stale).status_code == 200
    fresh = _bearer(app, "arbetsledare", 10)
    response = api.post(f"/api/v1/decisions/{decision}/approve", json={}, headers=fresh)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert _status(app, decision) == "approved"


def test_api_session_caller_needs_a_recent_password(app: Flask, frozen: Clock) -> None:
    ids = _proposal(app)
    decision = ids["decision_id"]
    supervisor = full_login(app, "arbetsledare")
    me = supervisor.get("/api/v1/me").get_json()
    frozen.advance(seconds=FRESH_AUTH_SECONDS + 1)
    response = supervisor.post(
        f"/api/v1/decisions/{decision}/approve",
        json={},
        headers={"X-CSRFToken": me["csrf_token"]},
    )
    assert response.status_code == 401 and _status(app, decision) == "proposed"


def test_a_token_without_auth_time_cannot_approve(app: Flask) -> None:
    from jose import jwt

    from webapp.tokens import ALGORITHM, _signing_key

    ids = _proposal(app)
    settings = app.extensions["lotsen"]
    claims = jwt.get_unverified_claims(issue_token(settings, "arbetsledare"))
    del claims["auth_time"]
    token = jwt.encode(claims, _signing_key(settings), algorithm=ALGORITHM)
    api = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/v1/me", headers=headers).status_code == 200
    response = api.post(f"/api/v1/decisions/{ids['decision_id']}/approve", json={}, headers=headers)
    assert response.status_code == 401
