"""Server-side sessions (security.md §1 rows 3-5, 7; §6 case 3): idle and absolute expiry,
logout and account disabling end them on the server, a user sees and ends their sessions."""

from __future__ import annotations

import time

from flask import Flask
from matrix_kit import bearer
from test_auth_kit import (
    Clock,
    audit_actions,
    audit_seq,
    cookie_of,
    csrf,
    frozen,
    full_login,
    logged_in,
    session_row,
    user,
)

from webapp.tokens import issue_token

__all__ = ["frozen"]


def _replay(app: Flask, cookie: str):  # type: ignore[no-untyped-def]
    client = app.test_client()
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie)
    return client


# --- expiry --------------------------------------------------------------------------------------


def test_idle_session_expires(app: Flask, frozen: Clock) -> None:
    idle = app.extensions["lotsen"].session_idle_minutes
    client = full_login(app, "handlaggare")
    frozen.advance(minutes=idle - 1)
    assert logged_in(client), "still within the idle limit"
    frozen.advance(minutes=idle + 1)
    page = client.get("/")
    assert page.status_code == 302 and "/login" in page.headers["Location"]


def test_active_session_ends_at_the_absolute_lifetime(app: Flask, frozen: Clock) -> None:
    settings = app.extensions["lotsen"]
    client = full_login(app, "handlaggare")
    step = settings.session_idle_minutes - 5
    elapsed = 0
    while elapsed + step < settings.session_absolute_hours * 60:
        frozen.advance(minutes=step)
        elapsed += step
        assert logged_in(client), f"active session ended after {elapsed} minutes"
    frozen.advance(minutes=settings.session_absolute_hours * 60 - elapsed + 1)
    page = client.get("/")
    assert page.status_code == 302 and "/login" in page.headers["Location"]


def test_logout_kills_the_cookie_on_the_server(app: Flask) -> None:
    client = full_login(app, "arbetsledare")
    stolen = cookie_of(app, client)
    response = client.post("/logout", data={"csrf_token": csrf(client)})
    assert response.status_code == 303
    replay = _replay(app, stolen)
    assert replay.get("/").status_code == 302
    assert replay.get("/api/v1/me").status_code == 401


def test_the_pre_login_session_id_is_not_the_logged_in_one(app: Flask) -> None:
    client = app.test_client()
    client.get("/login")
    before = cookie_of(app, client)
    full_login(app, "arbetsledare", client)
    after = cookie_of(app, client)
    assert before != after
    assert not logged_in(_replay(app, before))


# --- the user's own sessions ---------------------------------------------------------------------


def test_a_user_sees_and_ends_their_other_sessions(app: Flask) -> None:
    laptop = app.test_client()
    laptop.environ_base["HTTP_USER_AGENT"] = (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"
    )
    full_login(app, "handlaggare", laptop)
    phone = app.test_client()
    phone.environ_base["HTTP_USER_AGENT"] = "Mozilla/5.0 (Linux; Android 14) Firefox/128.0"
    full_login(app, "handlaggare", phone, ip="10.20.30.40")
    third = full_login(app, "handlaggare")
    someone_else = full_login(app, "samordnare")

    page = laptop.get("/account/sessions").get_data(as_text=True)
    assert "Chrome" in page and "Windows" in page and "Firefox" in page and "Android" in page
    assert "10.20.30.40" in page
    assert page.count('name="session_id"') == 2, "the two other sessions can be ended"

    phone_row = session_row(app, phone)
    assert phone_row is not None
    seq = audit_seq(app)
    response = laptop.post(
        "/account/sessions",
        data={"action": "end", "session_id": str(phone_row.id), "csrf_token": csrf(laptop)},
    )
    assert response.status_code == 303
    assert not logged_in(phone) and logged_in(laptop) and logged_in(third)
    assert any(e.action == "session:ended" for e in audit_actions(app, seq))

    # somebody else's session cannot be ended from here
    other_row = session_row(app, someone_else)
    assert other_row is not None
    refused = laptop.post(
        "/account/sessions",
        data={"action": "end", "session_id": str(other_row.id), "csrf_token": csrf(laptop)},
    )
    assert refused.status_code == 422 and logged_in(someone_else)

    response = laptop.post(
        "/account/sessions", data={"action": "end_others", "csrf_token": csrf(laptop)}
    )
    assert response.status_code == 303
    assert logged_in(laptop) and not logged_in(third) and logged_in(someone_else)


def test_the_current_session_is_not_ended_from_the_list(app: Flask) -> None:
    client = full_login(app, "handlaggare")
    row = session_row(app, client)
    assert row is not None
    response = client.post(
        "/account/sessions",
        data={"action": "end", "session_id": str(row.id), "csrf_token": csrf(client)},
    )
    assert response.status_code == 422 and logged_in(client)


# --- disabling an account ------------------------------------------------------------------------


def _admin_action(app: Flask, admin, username: str, action: str):  # type: ignore[no-untyped-def]
    return admin.post(
        "/admin/users",
        data={
            "user_id": str(user(app, username).id),
            "action": action,
            "csrf_token": csrf(admin, "/admin/users"),
        },
    )


def test_disabling_a_user_ends_their_sessions_and_tokens_at_once(app: Flask) -> None:
    victim = full_login(app, "handlaggare")
    token = bearer(app, "handlaggare")
    api = app.test_client()
    assert api.get("/api/v1/me", headers=token).status_code == 200
    admin = full_login(app, "admin")
    seq = audit_seq(app)
    response = _admin_action(app, admin, "handlaggare", "disable")
    assert response.status_code == 303
    page = victim.get("/")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    assert api.get("/api/v1/me", headers=token).status_code == 401
    entries = audit_actions(app, seq)
    disabled = [e for e in entries if e.action == "user:disabled"]
    assert len(disabled) == 1 and disabled[0].actor_name == "admin"
    assert disabled[0].details["sessions_ended"] >= 1
    assert session_row(app, victim) is None

    # enabled again: the old cookie and the old token stay dead, a new login works
    assert _admin_action(app, admin, "handlaggare", "enable").status_code == 303
    assert api.get("/api/v1/me", headers=token).status_code == 401
    assert not logged_in(victim)
    assert logged_in(full_login(app, "handlaggare"))
    # tokens carry whole seconds: one issued in the second of the disabling is refused too
    time.sleep(1.05)
    assert api.get("/api/v1/me", headers=bearer(app, "handlaggare")).status_code == 200


def test_a_disabled_user_cannot_log_in(app: Flask) -> None:
    admin = full_login(app, "admin")
    _admin_action(app, admin, "samordnare", "disable")
    from test_auth_kit import post_login

    assert post_login(app.test_client(), "samordnare").status_code == 401


def test_the_admin_page_is_for_admins_only_and_admins_cannot_disable_themselves(
    app: Flask,
) -> None:
    supervisor = full_login(app, "arbetsledare")
    assert supervisor.get("/admin/users").status_code == 403
    admin = full_login(app, "admin")
    page = admin.get("/admin/users").get_data(as_text=True)
    assert "handlaggare" in page and "arbetsledare" in page
    response = _admin_action(app, admin, "admin", "disable")
    assert response.status_code == 422 and user(app, "admin").active


def test_an_admin_sets_the_notification_address_and_a_bad_one_is_explained(app: Flask) -> None:
    admin = full_login(app, "admin")

    def set_email(value: str):  # type: ignore[no-untyped-def]
        return admin.post(
            "/admin/users",
            data={
                "user_id": str(user(app, "samordnare").id),
                "action": "set_email",
                "email": value,
                "csrf_token": csrf(admin, "/admin/users"),
            },
        )

    seq = audit_seq(app)
    assert set_email("samordnare@huddinge.example").status_code == 303
    assert user(app, "samordnare").email == "samordnare@huddinge.example"
    changed = [e for e in audit_actions(app, seq) if e.action == "user:email_changed"]
    assert len(changed) == 1 and "huddinge.example" not in str(changed[0].details)
    refused = set_email("not an address")
    assert refused.status_code == 422
    assert "valid e-mail address" in refused.get_data(as_text=True) or "giltig e-postadress" in (
        refused.get_data(as_text=True)
    )
    assert user(app, "samordnare").email == "samordnare@huddinge.example"
    assert set_email("").status_code == 303 and user(app, "samordnare").email is None


def test_resetting_a_lost_second_factor(app: Flask) -> None:
    supervisor = full_login(app, "arbetsledare")
    admin = full_login(app, "admin")
    assert _admin_action(app, admin, "arbetsledare", "reset_totp").status_code == 303
    assert user(app, "arbetsledare").totp_secret is None
    assert not logged_in(supervisor)


def test_revoking_a_token_by_jti_from_the_command_line(app: Flask) -> None:
    from jose import jwt

    token = issue_token(app.extensions["lotsen"], "handlaggare")
    other = issue_token(app.extensions["lotsen"], "handlaggare")
    jti = jwt.get_unverified_claims(token)["jti"]
    api = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/v1/me", headers=headers).status_code == 200
    seq = audit_seq(app)
    result = app.test_cli_runner().invoke(args=["lotsen", "revoke-token", "--jti", jti])
    assert result.exit_code == 0, result.output
    assert api.get("/api/v1/me", headers=headers).status_code == 401
    assert api.get("/api/v1/me", headers={"Authorization": f"Bearer {other}"}).status_code == 200
    entries = audit_actions(app, seq)
    assert any(e.action == "token:revoked" and e.object_id == jti for e in entries)
    rejected = [e for e in entries if e.action == "auth:token_rejected"]
    assert rejected and rejected[-1].details["reason"] == "revoked token"
    again = app.test_cli_runner().invoke(args=["lotsen", "revoke-token", "--jti", jti])
    assert again.exit_code == 0 and "already" in again.output


def test_revoking_every_token_of_a_user_from_the_command_line(app: Flask) -> None:
    token = {"Authorization": f"Bearer {issue_token(app.extensions['lotsen'], 'huge')}"}
    api = app.test_client()
    assert api.get("/api/v1/me", headers=token).status_code == 200
    result = app.test_cli_runner().invoke(args=["lotsen", "revoke-token", "--user", "huge"])
    assert result.exit_code == 0, result.output
    assert api.get("/api/v1/me", headers=token).status_code == 401
    bad = app.test_cli_runner().invoke(args=["lotsen", "revoke-token"])
    assert bad.exit_code != 0


def test_a_session_ended_during_a_request_is_not_written_back(app: Flask) -> None:
    """The request was already running when the row was deleted: it must not come back."""
    from flask import request
    from sqlalchemy import delete, select

    from engine.db import unit_of_work
    from engine.models import WebSession

    client = full_login(app, "handlaggare")
    cookie = cookie_of(app, client)
    name = app.config["SESSION_COOKIE_NAME"]
    interface = app.session_interface
    with app.test_request_context("/", headers={"Cookie": f"{name}={cookie}"}):
        opened = interface.open_session(app, request)
        assert opened is not None and opened.get("uid")
        with unit_of_work(app.extensions["lotsen_db"]) as db:
            db.execute(delete(WebSession).where(WebSession.user_id == opened["uid"]))
        opened["lang"] = "en"  # the running request changes the session
        response = app.response_class("ok")
        interface.save_session(app, opened, response)
        assert not any(
            h.startswith(f"{name}=")
            and "Max-Age=0" not in h
            and "Expires=Thu, 01 Jan 1970" not in h
            for h in response.headers.getlist("Set-Cookie")
        ), response.headers.getlist("Set-Cookie")
    db = app.extensions["lotsen_db"]()
    try:
        rows = db.execute(select(WebSession.user_id)).scalars().all()
    finally:
        db.close()
    assert user(app, "handlaggare").id not in rows, rows
    assert not logged_in(client)
