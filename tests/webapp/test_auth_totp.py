"""The second factor (security.md §1 row 2): TOTP required for supervisors, unit managers,
process owners, auditors and admins; optional for the others; a code is used only once."""

from __future__ import annotations

from pathlib import Path

import pyotp
import pytest
from flask import Flask
from sqlalchemy import select, text
from test_auth_kit import (
    Clock,
    audit_actions,
    audit_seq,
    csrf,
    frozen,
    full_login,
    logged_in,
    post_login,
    user,
)

from engine.db import unit_of_work, utcnow
from engine.login import DEMO_TOTP_SECRET, TOTP_STEP_SECONDS, mfa_required
from engine.models import RoleAssignment, User
from engine.passwords import hash_password
from tests.conftest import csrf_token_from, make_app, totp_code

__all__ = ["frozen"]

REQUIRED = ("arbetsledare", "enhetschef", "processagare", "granskare", "admin")
OPTIONAL = ("handlaggare", "samordnare", "kvinnofrid", "huge")


def _code_now(secret: str = DEMO_TOTP_SECRET) -> str:
    step = int(utcnow().timestamp()) // TOTP_STEP_SECONDS
    return str(pyotp.TOTP(secret).at(step * TOTP_STEP_SECONDS))


def _send_code(client, code: str):  # type: ignore[no-untyped-def]
    page = client.get("/login/totp").get_data(as_text=True)
    return client.post("/login/totp", data={"code": code, "csrf_token": csrf_token_from(page)})


@pytest.mark.parametrize("username", REQUIRED)
def test_roles_that_need_a_second_factor_are_asked_for_a_code(app: Flask, username: str) -> None:
    assert mfa_required(user(app, username))
    client = app.test_client()
    response = post_login(client, username)
    assert response.status_code == 303 and response.headers["Location"] == "/login/totp"
    assert not logged_in(client), "the password alone must not log in"
    assert client.get("/api/v1/me").status_code == 401


@pytest.mark.parametrize("username", OPTIONAL)
def test_other_roles_log_in_with_the_password(app: Flask, username: str) -> None:
    client = app.test_client()
    response = post_login(client, username)
    assert response.status_code == 303 and response.headers["Location"] == "/"
    assert logged_in(client)


def test_wrong_code_is_refused_and_the_right_one_logs_in(app: Flask, frozen: Clock) -> None:
    seq = audit_seq(app)
    client = app.test_client()
    post_login(client, "arbetsledare")
    right = _code_now()
    wrong = "000000" if right != "000000" else "111111"
    refused = _send_code(client, wrong)
    assert refused.status_code == 401 and not logged_in(client)
    assert _send_code(client, "12345").status_code == 401
    accepted = _send_code(client, right)
    assert accepted.status_code == 303 and logged_in(client)
    actions = [e.action for e in audit_actions(app, seq)]
    assert actions.count("auth:totp_failed") == 2 and "auth:login" in actions
    login_entry = next(e for e in audit_actions(app, seq) if e.action == "auth:login")
    assert login_entry.details["amr"] == ["pwd", "otp"]


def test_a_code_cannot_be_replayed_in_the_same_step(app: Flask, frozen: Clock) -> None:
    first = app.test_client()
    post_login(first, "arbetsledare")
    code = _code_now()
    assert _send_code(first, code).status_code == 303
    second = app.test_client()
    post_login(second, "arbetsledare")
    assert _send_code(second, code).status_code == 401
    assert not logged_in(second)
    frozen.advance(seconds=TOTP_STEP_SECONDS)
    assert _send_code(second, _code_now()).status_code == 303 and logged_in(second)


def test_guessing_codes_locks_the_account(app: Flask, frozen: Clock) -> None:
    client = app.test_client()
    post_login(client, "arbetsledare")
    right = _code_now()
    wrong = [c for c in ("000000", "111111", "222222", "333333", "444444", "555555") if c != right]
    statuses = [_send_code(client, c).status_code for c in wrong[:5]]
    assert statuses[-1] == 429
    # the pending login is gone, and a new one is refused while the lock lasts
    again = app.test_client()
    assert post_login(again, "arbetsledare").status_code == 429


def test_the_pending_login_expires(app: Flask, frozen: Clock) -> None:
    client = app.test_client()
    post_login(client, "arbetsledare")
    token = csrf_token_from(client.get("/login/totp").get_data(as_text=True))
    frozen.advance(minutes=6)
    page = client.get("/login/totp")
    assert page.status_code == 303 and page.headers["Location"] == "/login"
    response = client.post("/login/totp", data={"code": _code_now(), "csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert not logged_in(client)


def test_demo_page_shows_the_demo_key_and_a_working_code(app: Flask) -> None:
    client = app.test_client()
    post_login(client, "arbetsledare")
    page = client.get("/login/totp").get_data(as_text=True)
    assert DEMO_TOTP_SECRET in page
    db_user = user(app, "arbetsledare")
    assert db_user.totp_secret == DEMO_TOTP_SECRET


def _app_without_demo(tmp_path: Path, database_url: str) -> Flask:
    return make_app(database_url, tmp_path, LOTSEN_DEMO="0")


def test_outside_demo_mode_a_required_role_enrols_at_first_login(
    database_url: str, tmp_path: Path
) -> None:
    app = _app_without_demo(tmp_path, database_url)
    try:
        client = app.test_client()
        post_login(client, "arbetsledare")
        page = client.get("/login/totp").get_data(as_text=True)
        assert DEMO_TOTP_SECRET not in page, "the demo key is shown outside demo mode"
        assert "data-totp-secret" in page and "otpauth://totp/" in page
        code = totp_code(app, "arbetsledare", page)
        response = client.post(
            "/login/totp", data={"code": code, "csrf_token": csrf_token_from(page)}
        )
        assert response.status_code == 303 and logged_in(client)
        enrolled = user(app, "arbetsledare")
        assert enrolled.totp_secret and enrolled.totp_secret != DEMO_TOTP_SECRET
        # stored encrypted: the raw column does not hold the key
        with app.extensions["lotsen_engine"].connect() as conn:
            raw = conn.execute(
                text("SELECT totp_secret FROM users WHERE username = 'arbetsledare'")
            ).scalar_one()
        assert enrolled.totp_secret not in raw
    finally:
        app.extensions["lotsen_engine"].dispose()


def test_a_caseworker_may_turn_the_second_factor_on_and_off(app: Flask, frozen: Clock) -> None:
    seq = audit_seq(app)
    client = full_login(app, "handlaggare")
    page = client.get("/account/totp").get_data(as_text=True)
    assert "data-totp-secret" in page
    wrong = client.post(
        "/account/totp",
        data={"action": "enrol", "code": "000000", "csrf_token": csrf_token_from(page)},
    )
    assert wrong.status_code == 422 and user(app, "handlaggare").totp_secret is None
    code = totp_code(app, "handlaggare", page)
    response = client.post(
        "/account/totp",
        data={"action": "enrol", "code": code, "csrf_token": csrf_token_from(page)},
    )
    assert response.status_code == 303
    secret = user(app, "handlaggare").totp_secret
    assert secret
    # from now on the caseworker's login asks for a code too
    other = app.test_client()
    assert post_login(other, "handlaggare").headers["Location"] == "/login/totp"
    frozen.advance(seconds=TOTP_STEP_SECONDS)
    assert _send_code(other, _code_now(secret)).status_code == 303
    # and it can be turned off again with a current code
    frozen.advance(seconds=TOTP_STEP_SECONDS)
    off = client.post(
        "/account/totp",
        data={"action": "remove", "code": _code_now(secret), "csrf_token": csrf(client)},
    )
    assert off.status_code == 303 and user(app, "handlaggare").totp_secret is None
    actions = [e.action for e in audit_actions(app, seq)]
    assert "auth:totp_enrolled" in actions and "auth:totp_removed" in actions


def test_a_supervisor_cannot_turn_the_second_factor_off(app: Flask, frozen: Clock) -> None:
    client = full_login(app, "arbetsledare")
    frozen.advance(seconds=TOTP_STEP_SECONDS)
    response = client.post(
        "/account/totp",
        data={"action": "remove", "code": _code_now(), "csrf_token": csrf(client)},
    )
    assert response.status_code == 422
    assert user(app, "arbetsledare").totp_secret == DEMO_TOTP_SECRET


def test_a_role_granted_after_login_needs_a_new_login_with_a_code(app: Flask) -> None:
    client = full_login(app, "handlaggare")
    assert logged_in(client)
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        target = db.execute(select(User).where(User.username == "handlaggare")).scalar_one()
        db.add(RoleAssignment(user_id=target.id, role="admin", unit_id=None))
    page = client.get("/")
    assert page.status_code == 302 and "/login" in page.headers["Location"]


def test_a_new_supervisor_in_demo_mode_enrols_a_key_of_their_own(app: Flask) -> None:
    """Only the documented demo accounts get the demo key; anybody else enrols properly."""
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        new = User(username="ny.arbetsledare", display_name="Ny", password_hash=hash_password("x"))
        new.roles = [RoleAssignment(role="supervisor", unit_id=None)]
        db.add(new)
    client = app.test_client()
    assert post_login(client, "ny.arbetsledare", "x").headers["Location"] == "/login/totp"
    page = client.get("/login/totp").get_data(as_text=True)
    assert "data-totp-secret" in page and DEMO_TOTP_SECRET not in page
