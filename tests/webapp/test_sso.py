"""Single sign-on (OIDC authorization code + PKCE) against a real local provider.

The provider (``oidc_kit``) is an HTTP server on 127.0.0.1: Lotsen fetches its discovery
document and keys and redeems the code over HTTP. The forged tokens of security.md §6 cases 2
and 3 are in ``tests/security/test_attack_cases_sso_search.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from engine.db import unit_of_work
from engine.models import AuditEntry, RoleAssignment, Unit, User, WebSession
from engine.models.protection import ExternalIdentity
from tests.conftest import make_app
from tests.webapp.oidc_kit import (
    CLIENT_ID,
    Provider,
    running_provider,
    s256,
    settings,
    sso_login,
    start_login,
)
from webapp import oidc


@pytest.fixture
def idp() -> Iterator[Provider]:
    with running_provider() as provider:
        yield provider


@pytest.fixture
def app(database_url: str, tmp_path: Path, idp: Provider) -> Iterator[Flask]:
    application = make_app(database_url, tmp_path, **settings(idp))
    yield application
    application.extensions["lotsen_engine"].dispose()


def _entries(app: Flask, action: str) -> list[AuditEntry]:
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        rows = list(
            db.execute(
                select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
            ).scalars()
        )
        db.expunge_all()
    return rows


def _session_row(app: Flask, client: Any) -> WebSession | None:
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    if cookie is None:
        return None
    digest = hashlib.sha256(cookie.value.encode()).hexdigest()
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        row = db.execute(
            select(WebSession).where(WebSession.id_hash == digest)
        ).scalar_one_or_none()
        if row is not None:
            db.expunge(row)
        return row


def test_login_page_offers_sso_only_when_configured(app: Flask, tmp_path: Path) -> None:
    page = app.test_client().get("/login").get_data(as_text=True)
    assert 'href="/sso/login' in page
    plain = make_app(f"sqlite:///{tmp_path / 'plain.db'}", tmp_path)
    client = plain.test_client()
    assert 'href="/sso/login' not in client.get("/login").get_data(as_text=True)
    assert client.get("/sso/login").status_code == 404
    assert client.get("/sso/callback?code=x&state=y").status_code == 404
    plain.extensions["lotsen_engine"].dispose()


def test_authorization_request_uses_pkce_state_and_nonce(app: Flask, idp: Provider) -> None:
    client = app.test_client()
    started = start_login(client)
    assert started.params["response_type"] == "code"
    assert started.params["client_id"] == CLIENT_ID
    assert started.params["code_challenge_method"] == "S256"
    assert "openid" in started.params["scope"].split()
    assert len(started.state) >= 43 and len(started.nonce) >= 43 and started.state != started.nonce
    # the verifier, state and nonce stay on the server: the cookie is an opaque id
    row = _session_row(app, client)
    assert row is not None and row.data["sso"]["state"] == started.state
    assert s256(row.data["sso"]["verifier"]) == started.challenge
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None and started.state not in cookie.value
    # a second start replaces the first: the old state is worthless
    again = start_login(client)
    assert again.state != started.state


def test_valid_login_new_session_audited(app: Flask, idp: Provider) -> None:
    client = app.test_client()
    client.get("/login")
    before = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    response = sso_login(client, idp)
    assert response.status_code == 303, response.get_data(as_text=True)
    after = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert after is not None and (before is None or before.value != after.value)
    assert client.get("/cases").status_code == 200
    row = _session_row(app, client)
    assert row is not None and row.data["amr"] == ["oidc"] and "sso" not in row.data
    login = _entries(app, "auth:login")[-1]
    assert login.actor_name == "handlaggare" and login.details == {"amr": ["oidc"]}
    # the code was redeemed with the client's secret and the PKCE verifier
    request = idp.token_requests[-1]
    assert request["grant_type"] == "authorization_code" and len(request["code_verifier"]) >= 43
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        link = db.execute(select(ExternalIdentity)).scalar_one()
        assert (link.issuer, link.subject) == (idp.issuer, "sub-handlaggare")


def test_es256_tokens_are_accepted(app: Flask, idp: Provider) -> None:
    client = app.test_client()
    response = sso_login(client, idp, lambda s: idp.sign(idp.claims(s.nonce), alg="ES256"))
    assert response.status_code == 303
    assert client.get("/cases").status_code == 200


def test_unknown_and_disabled_accounts_are_refused(app: Flask, idp: Provider) -> None:
    client = app.test_client()
    response = sso_login(
        client,
        idp,
        lambda s: idp.sign(idp.claims(s.nonce, sub="sub-x", preferred_username="nobody")),
    )
    assert response.status_code == 401
    assert "not set up in Lotsen" in response.get_data(as_text=True) or "Lotsen" in (
        response.get_data(as_text=True)
    )
    assert client.get("/cases").status_code == 302
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        user = db.execute(select(User).where(User.username == "handlaggare")).scalar_one()
        user.active = False
        assert db.execute(select(User).where(User.username == "nobody")).first() is None
    response = sso_login(app.test_client(), idp)
    assert response.status_code == 401
    reasons = [e.details["reason"] for e in _entries(app, "auth:sso_failed")]
    assert reasons == ["unknown_user", "inactive_user"]


def test_provisioning_creates_the_account_with_mapped_roles(
    database_url: str, tmp_path: Path, idp: Provider
) -> None:
    app = make_app(
        database_url,
        tmp_path,
        **settings(
            idp,
            LOTSEN_OIDC_PROVISION="1",
            LOTSEN_OIDC_ROLE_CLAIM="groups",
            LOTSEN_OIDC_UNIT_CLAIM="unit",
            LOTSEN_OIDC_ROLE_MAP="sg-lotsen-socsek=caseworker,sg-lotsen-admin=admin",
        ),
    )
    client = app.test_client()
    token = lambda s: idp.sign(  # noqa: E731
        idp.claims(
            s.nonce,
            sub="sub-new",
            preferred_username="ny.handlaggare",
            name="Nora Ny",
            groups=["sg-lotsen-socsek", "sg-unknown", "housing_contact_typo"],
            unit="barn_och_unga",
        )
    )
    response = sso_login(client, idp, token)
    assert response.status_code == 303, response.get_data(as_text=True)
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        user = db.execute(select(User).where(User.username == "ny.handlaggare")).scalar_one()
        barn = db.execute(select(Unit.id).where(Unit.key == "barn_och_unga")).scalar_one()
        assert user.display_name == "Nora Ny" and user.password_hash is None
        assert [(r.role, r.unit_id) for r in user.roles] == [("caseworker", barn)]
    assert _entries(app, "user:provisioned")
    app.extensions["lotsen_engine"].dispose()


def test_roles_follow_the_configured_claims(
    database_url: str, tmp_path: Path, idp: Provider
) -> None:
    app = make_app(
        database_url,
        tmp_path,
        **settings(idp, LOTSEN_OIDC_ROLE_CLAIM="groups", LOTSEN_OIDC_UNIT_CLAIM="unit"),
    )
    moved = lambda s: idp.sign(  # noqa: E731
        idp.claims(s.nonce, groups=["caseworker"], unit="barn_och_unga")
    )
    assert sso_login(app.test_client(), idp, moved).status_code == 303
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        user = db.execute(select(User).where(User.username == "handlaggare")).scalar_one()
        barn = db.execute(select(Unit.id).where(Unit.key == "barn_och_unga")).scalar_one()
        assert [(r.role, r.unit_id) for r in user.roles] == [("caseworker", barn)]
    synced = _entries(app, "user:roles_synced")[-1]
    assert synced.details["after"] == [f"caseworker@{barn}"]
    # a unit-scoped role without a known unit is dropped; no role at all: refused
    no_unit = lambda s: idp.sign(  # noqa: E731
        idp.claims(s.nonce, groups=["caseworker"], unit="okand_enhet")
    )
    assert sso_login(app.test_client(), idp, no_unit).status_code == 401
    assert _entries(app, "auth:sso_failed")[-1].details["reason"] == "no_role"
    # a role granted by the provider that needs a second factor, with a password only
    admin = lambda s: idp.sign(idp.claims(s.nonce, groups=["admin"]))  # noqa: E731
    assert sso_login(app.test_client(), idp, admin).status_code == 401
    assert _entries(app, "auth:sso_failed")[-1].details["reason"] == "second_factor_missing"
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        roles = db.execute(
            select(RoleAssignment.role).join(User).where(User.username == "handlaggare")
        )
        assert set(roles.scalars()) == {"admin"}  # synced, but the login was refused
    app.extensions["lotsen_engine"].dispose()


def test_second_factor_roles_need_mfa_at_the_provider(app: Flask, idp: Provider) -> None:
    pwd_only = lambda s: idp.sign(  # noqa: E731
        idp.claims(s.nonce, sub="sub-al", preferred_username="arbetsledare")
    )
    client = app.test_client()
    assert sso_login(client, idp, pwd_only).status_code == 401
    assert client.get("/cases").status_code == 302
    with_otp = lambda s: idp.sign(  # noqa: E731
        idp.claims(s.nonce, sub="sub-al", preferred_username="arbetsledare", amr=["pwd", "otp"])
    )
    assert sso_login(client, idp, with_otp).status_code == 303
    assert client.get("/cases").status_code == 200
    assert _entries(app, "auth:login")[-1].details == {"amr": ["oidc", "otp"]}


def test_the_subject_link_decides_the_account(app: Flask, idp: Provider) -> None:
    assert sso_login(app.test_client(), idp).status_code == 303  # links sub-handlaggare
    # the username claim changes to somebody else's: the link still says handlaggare
    renamed = lambda s: idp.sign(idp.claims(s.nonce, preferred_username="admin"))  # noqa: E731
    client = app.test_client()
    assert sso_login(client, idp, renamed).status_code == 303
    assert _entries(app, "auth:login")[-1].actor_name == "handlaggare"
    # another subject claiming the linked username is refused
    other = lambda s: idp.sign(idp.claims(s.nonce, sub="sub-intruder"))  # noqa: E731
    assert sso_login(app.test_client(), idp, other).status_code == 401
    assert _entries(app, "auth:sso_failed")[-1].details["reason"] == "username_taken"


def test_logged_in_user_reauthenticates_through_the_provider(app: Flask, idp: Provider) -> None:
    from engine.db import clock, utcnow

    client = app.test_client()
    assert sso_login(client, idp).status_code == 303
    first = _session_row(app, client)
    assert first is not None
    clock.frozen = utcnow()
    try:
        started = start_login(client)
        assert started.params["prompt"] == "login" and started.params["max_age"] == "0"
        code = idp.issue_code(
            started.challenge,
            started.redirect_uri,
            lambda: idp.sign(idp.claims(started.nonce, auth_time=int(utcnow().timestamp()))),
        )
        response = client.get(f"/sso/callback?code={code}&state={started.state}")
        assert response.status_code == 303
        row = _session_row(app, client)
        assert row is not None and row.id_hash == first.id_hash  # same session, fresher auth
        assert row.data["auth_at"] >= first.data["auth_at"]
        assert _entries(app, "auth:reauthenticated")[-1].details == {"method": "oidc"}
        # somebody else's account at the provider cannot confirm this session
        started = start_login(client)
        code = idp.issue_code(
            started.challenge,
            started.redirect_uri,
            lambda: idp.sign(
                idp.claims(
                    started.nonce, sub="sub-sam", preferred_username="samordnare", amr=["otp"]
                )
            ),
        )
        response = client.get(f"/sso/callback?code={code}&state={started.state}")
        assert response.status_code == 401
        assert _entries(app, "auth:sso_failed")[-1].details["reason"] == "reauth_other_user"
    finally:
        clock.frozen = None


def test_callback_failures_from_one_address_are_throttled(app: Flask, idp: Provider) -> None:
    client = app.test_client()
    environ = {"REMOTE_ADDR": "10.9.8.7"}
    for _ in range(30):
        response = client.get("/sso/callback?code=x&state=y", environ_base=environ)
        assert response.status_code == 401
    response = client.get("/sso/callback?code=x&state=y", environ_base=environ)
    assert response.status_code == 429
    # another address is not affected
    assert sso_login(app.test_client(), idp).status_code == 303


def test_unsafe_settings_stop_the_app(tmp_path: Path, idp: Provider) -> None:
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    with pytest.raises(ValueError, match="ALGORITHMS"):
        make_app(url, tmp_path, **settings(idp, LOTSEN_OIDC_ALGORITHMS="RS256,HS256"))
    with pytest.raises(oidc.OidcError):
        make_app(url, tmp_path, **{**settings(idp), "LOTSEN_OIDC_ISSUER": "http://idp.example"})


def test_unreachable_provider_gives_a_clear_page(database_url: str, tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = make_app(
        database_url,
        tmp_path,
        LOTSEN_OIDC_ISSUER=f"http://127.0.0.1:{port}",
        LOTSEN_OIDC_CLIENT_ID=CLIENT_ID,
    )
    response = app.test_client().get("/sso/login")
    assert response.status_code == 503
    assert 'href="/login"' in response.get_data(as_text=True)
    assert _entries(app, "auth:sso_failed")[-1].details["reason"] == "provider_unreachable"
    app.extensions["lotsen_engine"].dispose()


def test_the_providers_auth_time_decides_freshness(app: Flask, idp: Provider) -> None:
    """security.md §1 row 10: an SSO session whose login at the provider is older than five
    minutes must step up before a sensitive action (here: break the glass)."""
    import time

    from tests.conftest import csrf_token_from

    old = int(time.time()) - 600
    client = app.test_client()
    response = sso_login(client, idp, lambda s: idp.sign(idp.claims(s.nonce, auth_time=old)))
    assert response.status_code == 303
    row = _session_row(app, client)
    assert row is not None and int(row.data["auth_at"]) == old
    page = client.get("/break-glass").get_data(as_text=True)
    sent = client.post(
        "/break-glass",
        data={
            "case_number": "VU-2026-00001",
            "reason": "Jouren: polisen behöver svar nu",
            "csrf_token": csrf_token_from(page),
        },
    )
    assert sent.status_code == 303 and sent.headers["Location"].startswith("/reauth")
    # a fresh login at the provider is fresh here too
    client = app.test_client()
    assert sso_login(client, idp).status_code == 303
    page = client.get("/break-glass").get_data(as_text=True)
    sent = client.post(
        "/break-glass",
        data={
            "case_number": "VU-2026-00001",
            "reason": "Jouren: polisen behöver svar nu",
            "csrf_token": csrf_token_from(page),
        },
    )
    assert sent.status_code == 422  # past the freshness check: no such case
