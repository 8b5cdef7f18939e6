"""JSON API v1 authentication: bearer tokens (forged, expired, for another audience...) are a
401 with an audit entry; the browser session works too, but only with the CSRF header on POST.
ASVS 3.5.3 / 9.2.3 / 4.2.2 (security.md §1 rows 8, 9, 16)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jose import jwt
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from test_api_kit import Apis, b64, load_scenario, token_for

from engine.models import AuditEntry, Case, User
from webapp.tokens import _signing_key

LoginAs = Callable[[str], FlaskClient]


@pytest.fixture
def apis(app: Flask) -> Apis:
    return Apis(app)


def _claims(app: Flask, **changes: Any) -> dict[str, Any]:
    settings = app.extensions["lotsen"]
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.token_issuer,
        "aud": settings.token_audience,
        "sub": "handlaggare",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "0123456789abcdef",
        "scope": "api",
    }
    for key, value in changes.items():
        if value is None:
            claims.pop(key, None)
        else:
            claims[key] = value
    return claims


def _signed(app: Flask, algorithm: str = "HS256", key: str | None = None, **changes: Any) -> str:
    secret = key if key is not None else _signing_key(app.extensions["lotsen"])
    return str(jwt.encode(_claims(app, **changes), secret, algorithm=algorithm))


def _rejections(db: Session) -> list[tuple[str, int | None, dict[str, Any]]]:
    """(outcome, actor id, details) of every auth:token_rejected audit entry."""
    rows = [
        (outcome, actor_id, dict(details))
        for outcome, actor_id, details in db.execute(
            select(AuditEntry.outcome, AuditEntry.actor_id, AuditEntry.details)
            .where(AuditEntry.action == "auth:token_rejected")
            .order_by(AuditEntry.seq)
        )
    ]
    db.rollback()  # end the read: SQLite would block the app's next write
    return rows


FORGERIES: dict[str, Callable[[Flask], str]] = {
    "alg none": lambda app: f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(_claims(app))}.",
    "alg none, no dot": lambda app: f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(_claims(app))}",
    "HS256 with a wrong key": lambda app: _signed(app, key="not-the-key"),
    "HS512 with the right key": lambda app: _signed(app, algorithm="HS512"),
    "expired": lambda app: _signed(app, exp=int(time.time()) - 120, iat=int(time.time()) - 900),
    "wrong aud": lambda app: _signed(app, aud="another-api"),
    "no aud": lambda app: _signed(app, aud=None),
    "wrong iss": lambda app: _signed(app, iss="https://evil.example"),
    "no iss": lambda app: _signed(app, iss=None),
    "no exp": lambda app: _signed(app, exp=None),
    "no sub": lambda app: _signed(app, sub=None),
    "not yet valid": lambda app: _signed(app, nbf=int(time.time()) + 3600),
    "unknown user": lambda app: _signed(app, sub="nobody"),
    "wrong scope": lambda app: _signed(app, scope="admin"),
    "tampered payload": lambda app: ".".join(
        [
            token_for(app, "handlaggare").split(".")[0],
            b64(_claims(app, sub="arbetsledare")),
            token_for(app, "handlaggare").split(".")[2],
        ]
    ),
    "garbage": lambda app: "garbage",
    "three garbage parts": lambda app: "a.b.c",
    "non-ascii": lambda app: "åäö.öäå.xyz",
    "huge": lambda app: "a" * 10_000,
}


@pytest.mark.parametrize("name", list(FORGERIES))
def test_forged_tokens_are_401_and_audited(apis: Apis, db: Session, name: str) -> None:
    token = FORGERIES[name](apis.app)
    before = len(_rejections(db))
    api = apis.anonymous(token)
    got = api.call("GET", "/me", expect=401)
    assert got.headers["WWW-Authenticate"].startswith("Bearer")
    assert set(got.get_json()) == {"error", "message"}
    api.post("/cases", {"procedure": "identification", "data": {}}, expect=401)
    rejected = _rejections(db)
    assert len(rejected) == before + 2
    assert all(outcome == "denied" and actor_id is None for outcome, actor_id, _ in rejected)
    assert token not in str(rejected[-1][2])


@pytest.mark.parametrize(
    "header",
    ["Basic aGFuZGxhZ2dhcmU6ZGVtbw==", "Bearer", "Bearer ", "bearer", "Token abc", ""],
)
def test_malformed_authorization_headers_are_401(apis: Apis, header: str) -> None:
    response = apis.anonymous().client.get("/api/v1/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.is_json


def test_a_real_token_works_and_an_inactive_users_does_not(apis: Apis, db: Session) -> None:
    token = token_for(apis.app, "handlaggare")
    assert apis.anonymous(token).json("GET", "/me")["username"] == "handlaggare"
    user = db.execute(select(User).where(User.username == "handlaggare")).scalar_one()
    user.active = False
    db.commit()
    apis.anonymous(token).call("GET", "/me", expect=401)
    assert _rejections(db)[-1][2]["reason"] == "unknown or inactive user"


def test_no_credentials_is_401_on_every_route_but_the_document(apis: Apis) -> None:
    anonymous = apis.anonymous()
    rules = [r for r in apis.app.url_map.iter_rules() if r.endpoint.startswith("api.")]
    assert len(rules) >= 13
    for rule in rules:
        path = re.sub(r"<int:\w+>", "1", rule.rule)
        path = re.sub(r"<\w+>", "abc", path)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            response = anonymous.client.open(path, method=method, json={})
            if rule.endpoint == "api.openapi":
                assert response.status_code == 200
            else:
                assert response.status_code == 401, (method, path)
                assert response.is_json


def test_bearer_posts_need_no_csrf_token(apis: Apis) -> None:
    # (Every other test posts with a bearer token and no CSRF token; this one says so.)
    intake = load_scenario("01")["intake"]
    api = apis["handlaggare"]
    assert api.csrf is None
    api.post("/cases", {"procedure": "identification", "data": intake}, expect=201)


def test_a_bad_bearer_token_never_falls_back_to_the_session(apis: Apis, login_as: LoginAs) -> None:
    browser = login_as("handlaggare")
    session_api = apis.for_client(browser)
    assert session_api.json("GET", "/me")["auth"] == "session"
    session_api.token = "garbage"
    session_api.call("GET", "/me", expect=401)
    # A good token for another user wins over the session cookie.
    session_api.token = token_for(apis.app, "arbetsledare")
    assert session_api.json("GET", "/me")["username"] == "arbetsledare"


# --- the browser session ------------------------------------------------------------------


def _session_api(apis: Apis, login_as: LoginAs, username: str = "handlaggare") -> Any:
    api = apis.for_client(login_as(username))
    me = api.json("GET", "/me")
    assert me["auth"] == "session" and me["csrf_token"]
    return api, me["csrf_token"]


def test_session_reads_need_no_csrf_header(apis: Apis, login_as: LoginAs) -> None:
    api, _ = _session_api(apis, login_as)
    assert api.json("GET", "/tasks")["tasks"] == []
    api.json("GET", "/processes")


def test_session_posts_need_the_csrf_header(apis: Apis, db: Session, login_as: LoginAs) -> None:
    api, token = _session_api(apis, login_as)
    body = {"procedure": "identification", "data": load_scenario("01")["intake"]}

    api.post("/cases", body, expect=400)  # no header
    api.post("/cases", body, headers={"X-CSRFToken": "not-a-token"}, expect=400)
    _, other_token = _session_api(apis, login_as, "handlaggare")  # another session's token
    api.post("/cases", body, headers={"X-CSRFToken": other_token}, expect=400)
    api.post(
        "/cases", body, headers={"X-CSRFToken": token, "Origin": "https://evil.example"}, expect=400
    )
    cases = db.execute(select(func.count()).select_from(Case)).scalar_one()
    failures = db.execute(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.action == "request:csrf_failed")
    ).scalar_one()
    db.rollback()
    assert (cases, failures) == (0, 4)

    api.csrf = token
    case = api.post("/cases", body, expect=201).get_json()
    same_origin = {"Origin": "http://localhost"}
    task = case["open_tasks"][0]
    api.post(f"/tasks/{task['id']}/claim", headers=same_origin, expect=200)
    api.post(
        f"/tasks/{task['id']}/complete",
        {"data": load_scenario("01")["steps"][0]["data"], "version": task["version"]},
        expect=200,
    )


def test_session_posts_to_decisions_need_the_csrf_header(apis: Apis, login_as: LoginAs) -> None:
    from test_api_kit import case_with_proposal

    _, proposal = case_with_proposal(apis)
    api, token = _session_api(apis, login_as, "arbetsledare")
    api.post(f"/decisions/{proposal['id']}/approve", {}, expect=400)
    api.post(f"/decisions/{proposal['id']}/return", {"comment": "x"}, expect=400)
    assert apis["arbetsledare"].json("GET", f"/decisions/{proposal['id']}")["status"] == "proposed"
    api.csrf = token
    assert api.json("POST", f"/decisions/{proposal['id']}/approve", {})["status"] == "approved"


def test_logged_out_session_is_401(apis: Apis, login_as: LoginAs) -> None:
    api, token = _session_api(apis, login_as)
    assert api.client.post("/logout", data={"csrf_token": token}).status_code == 303
    api.call("GET", "/me", expect=401)
    api.csrf = token
    api.post("/cases", {"procedure": "identification", "data": {}}, expect=401)
