"""security.md §6 attack cases 2, 3, 6, 13, 17 and 20, run as black-box HTTP tests.

* 2, 3: forged ID tokens against the single sign-on callback, signed and served by a real
  local identity provider (``tests/webapp/oidc_kit.py``): each one is refused (401, the login
  page's message) with an ``auth:sso_failed`` entry, and nobody is logged in.
* 6: the housing company's user sees no case, person search or personnummer.
* 13: SQL-looking input to the person search and to list sorting: 400/422 or a normal answer,
  fast.
* 17: a person with protected identity: location, name and number stay out of every page,
  result and JSON the team or others can reach; emergency access cannot open the case.
* 20: 150 failed logins on one account, and a burst of person searches: 429 and an alert.
"""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from engine import person_search
from engine.db import unit_of_work
from engine.models import AuditEntry, Case, Subject
from engine.models.protection import BreakGlassGrant, SecurityAlert
from tests.conftest import csrf_token_from, login, make_app
from tests.webapp.oidc_kit import Provider, Started, running_provider, settings, sso_login

ROOT = Path(__file__).resolve().parents[2]
INTAKE_SCENARIO = ROOT / "bpmn" / "identification" / "scenarios"
PNR = "19850415-1237"
PNR_RE = re.compile(r"\b(?:19|20)?\d{6}[-+]?\d{4}\b")


@pytest.fixture
def idp() -> Iterator[Provider]:
    with running_provider() as provider:
        yield provider


@pytest.fixture
def app(database_url: str, tmp_path: Path, idp: Provider) -> Iterator[Flask]:
    application = make_app(database_url, tmp_path, **settings(idp))
    yield application
    application.extensions["lotsen_engine"].dispose()


def _failures(app: Flask) -> list[AuditEntry]:
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        rows = list(
            db.execute(
                select(AuditEntry)
                .where(AuditEntry.action == "auth:sso_failed")
                .order_by(AuditEntry.seq)
            ).scalars()
        )
        db.expunge_all()
    return rows


def _refused(app: Flask, client: FlaskClient, response: Any, reason: str | None = None) -> None:
    """401 with the login page's message, nobody logged in, one audited failure."""
    assert response.status_code == 401, response.status_code
    page = response.get_data(as_text=True)
    assert 'role="alert"' in page and 'href="/sso/login"' in page
    assert client.get("/cases").status_code == 302  # still anonymous
    last = _failures(app)[-1]
    assert last.outcome == "denied"
    if reason is not None:
        assert last.details["reason"] == reason, last.details


# --- case 2: algorithm confusion ----------


def test_case_02_hs256_signed_with_the_public_key_is_refused(app: Flask, idp: Provider) -> None:
    def confused(s: Started) -> str:
        claims = idp.claims(s.nonce)
        return idp.forge(
            claims, {"alg": "HS256", "typ": "JWT", "kid": idp.rsa_kid}, idp.public_pem()
        )

    client = app.test_client()
    _refused(app, client, sso_login(client, idp, confused), "algorithm_not_allowed")

    # the same with the JWK's modulus-free forms of the key and without a kid
    def confused_no_kid(s: Started) -> str:
        return idp.forge(idp.claims(s.nonce), {"alg": "HS256"}, idp.public_pem().strip())

    client = app.test_client()
    _refused(app, client, sso_login(client, idp, confused_no_kid), "algorithm_not_allowed")
    # and the control: the same claims, signed properly, log in
    assert sso_login(app.test_client(), idp).status_code == 303


# --- case 3: alg none, expiry, audience, issuer, nonce, PKCE, state ----------


def _variants(idp: Provider) -> dict[str, tuple[Any, str]]:
    """name -> (token maker, expected reason)."""
    now = int(time.time())
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "alg none": (
            lambda s: idp.forge(idp.claims(s.nonce), {"alg": "none", "typ": "JWT"}, None),
            "algorithm_not_allowed",
        ),
        "alg None spelled differently": (
            lambda s: idp.forge(idp.claims(s.nonce), {"alg": "None"}, None),
            "algorithm_not_allowed",
        ),
        "expired": (
            lambda s: idp.sign(idp.claims(s.nonce, iat=now - 500, exp=now - 200)),
            "token_expired",
        ),
        "no exp": (lambda s: idp.sign(idp.claims(s.nonce, exp=...)), "missing_exp"),
        "no iat": (lambda s: idp.sign(idp.claims(s.nonce, iat=...)), "missing_iat"),
        "wrong aud": (lambda s: idp.sign(idp.claims(s.nonce, aud="another-app")), "wrong_audience"),
        "no aud": (lambda s: idp.sign(idp.claims(s.nonce, aud=...)), "missing_aud"),
        "extra aud without azp": (
            lambda s: idp.sign(idp.claims(s.nonce, aud=[idp_client(), "another-app"])),
            "wrong_authorized_party",
        ),
        "wrong iss": (
            lambda s: idp.sign(idp.claims(s.nonce, iss="https://evil.example")),
            "wrong_issuer",
        ),
        "no iss": (lambda s: idp.sign(idp.claims(s.nonce, iss=...)), "missing_iss"),
        "wrong nonce": (
            lambda s: idp.sign(idp.claims("replayed-nonce-from-an-old-login")),
            "wrong_nonce",
        ),
        "no nonce": (lambda s: idp.sign(idp.claims(s.nonce, nonce=...)), "wrong_nonce"),
        "issued long ago": (
            lambda s: idp.sign(idp.claims(s.nonce, iat=now - 3600, exp=now + 300)),
            "token_too_old_or_from_the_future",
        ),
        "attacker's key under the provider's kid": (
            lambda s: idp.sign_with(idp.claims(s.nonce), attacker),
            "bad_signature",
        ),
        "unknown kid": (
            lambda s: idp.sign_with(idp.claims(s.nonce), attacker, kid="attacker-key"),
            "unknown_key",
        ),
        "not a token": (lambda s: "not.a.jwt", "malformed_token"),
    }


def idp_client() -> str:
    from tests.webapp.oidc_kit import CLIENT_ID

    return CLIENT_ID


def test_case_03_forged_and_faulty_tokens_are_refused(app: Flask, idp: Provider) -> None:
    failures = []
    for number, (name, (make, reason)) in enumerate(_variants(idp).items()):
        client = app.test_client()
        environ = {"REMOTE_ADDR": f"10.3.0.{number + 1}"}
        response = sso_login(client, idp, make, environ=environ)
        if response.status_code != 401:
            failures.append(f"{name}: {response.status_code}")
            continue
        got = _failures(app)[-1].details["reason"]
        if got != reason:
            failures.append(f"{name}: reason {got}, expected {reason}")
        if client.get("/cases").status_code != 302:
            failures.append(f"{name}: a session was logged in")
    assert not failures, failures


def test_oidc_bad_pkce_and_replayed_state_are_refused(app: Flask, idp: Provider) -> None:
    # a code issued for somebody else's challenge (code injection): the token endpoint refuses
    client = app.test_client()
    response = sso_login(client, idp, challenge="A" * 43)
    _refused(app, client, response, "token_endpoint_http_400")
    # a good round, then the same callback URL again (replayed state and code)
    client = app.test_client()
    from tests.webapp.oidc_kit import start_login

    started = start_login(client)
    code = idp.issue_code(
        started.challenge, started.redirect_uri, lambda: idp.sign(idp.claims(started.nonce))
    )
    url = "/sso/callback?" + urllib.parse.urlencode({"code": code, "state": started.state})
    assert client.get(url).status_code == 303
    replay = app.test_client()  # the attacker's browser, with the leaked URL
    _refused(app, replay, replay.get(url), "no_pending_login")
    # a state that does not match the one this browser started with
    client = app.test_client()
    _refused(app, client, sso_login(client, idp, state="forged-state"), "wrong_state")


# --- case 6: the housing company's user ----------


def _intake(**changes: Any) -> dict[str, Any]:
    import json

    plan = json.loads(
        (INTAKE_SCENARIO / "01_presumed_trafficking_begging_reported.json").read_text("utf-8")
    )
    return {**plan["intake"], **changes}


def _start_case(app: Flask, **changes: Any) -> int:
    from engine import actions
    from engine.processes import latest_published, model_for
    from forms import load_form_spec
    from tests.conftest import actor, unit_id

    with unit_of_work(app.extensions["lotsen_db"]) as db:
        version = latest_published(db, "identification")
        spec = load_form_spec(version.forms[model_for(version).start_form_key])
        case = actions.start_case(
            db,
            actor(db, "handlaggare"),
            procedure="identification",
            unit_id=unit_id(db, "vuxenenheten"),
            intake={**spec.empty_data(), **_intake(**changes)},
            subject_fields=spec.subject_fields,
        )
        return int(case.id)


def _named_case(app: Flask, **changes: Any) -> int:
    return _start_case(
        app,
        identity_status="known",
        subject_name="Ioana Testperson",
        personnummer=PNR.replace("-", ""),
        **changes,
    )


def _post_search(client: FlaskClient, value: str) -> Any:
    page = client.get("/search")
    token = csrf_token_from(page.get_data(as_text=True)) if page.status_code == 200 else ""
    if not token:
        token = csrf_token_from(client.get("/").get_data(as_text=True))
    return client.post("/search", data={"personnummer": value, "csrf_token": token})


def test_case_06_housing_user_sees_no_case_person_or_number(app: Flask) -> None:
    case_id = _named_case(app)
    huge = login(app.test_client(), "huge")
    answers = {
        "/cases": huge.get("/cases"),
        f"/cases/{case_id}": huge.get(f"/cases/{case_id}"),
        "/search": huge.get("/search"),
        "POST /search": _post_search(huge, PNR),
        "/break-glass": huge.get("/break-glass"),
        "/alerts": huge.get("/alerts"),
    }
    from webapp.tokens import issue_token

    bearer = {"Authorization": f"Bearer {issue_token(app.extensions['lotsen'], 'huge')}"}
    api = app.test_client()
    for url in (f"/api/v1/cases/{case_id}", "/api/v1/tasks", "/api/v1/me"):
        answers[url] = api.get(url, headers=bearer)
    expected = {
        f"/cases/{case_id}": {404},
        "/search": {403},
        "POST /search": {403},
        "/break-glass": {403},
        "/alerts": {403},
        f"/api/v1/cases/{case_id}": {403, 404},
        "/cases": {200, 403},
        "/api/v1/tasks": {200, 403},
        "/api/v1/me": {200},
    }
    wrong = {u: r.status_code for u, r in answers.items() if r.status_code not in expected[u]}
    assert not wrong, wrong
    for url, response in answers.items():
        body = response.get_data(as_text=True)
        assert not PNR_RE.search(body), f"{url} shows a personnummer"
        for secret in ("Ioana", "Testperson", "Flemingsbergs", "En man i 40-årsåldern", "Nicu"):
            assert secret not in body, f"{url} shows {secret!r}"
    assert f'href="/cases/{case_id}"' not in answers["/cases"].get_data(as_text=True)


# --- case 13: SQL-looking input ----------


def test_case_13_sql_in_search_and_sort_is_inert(app: Flask) -> None:
    case_id = _named_case(app)
    client = login(app.test_client(), "handlaggare")
    slow = []
    for value in ("' OR 1=1--", "%' OR 1=1--", "19850415-1237' OR '1'='1", "1;select pg_sleep(5)"):
        started = time.monotonic()
        response = _post_search(client, value)
        if time.monotonic() - started > 2:
            slow.append(value)
        assert response.status_code in (400, 422), (value, response.status_code)
        assert "personal identity number" in response.get_data(as_text=True).lower() or (
            "personnummer" in response.get_data(as_text=True).lower()
        )
    for url in (
        "/cases?sort=id%20desc;select%20pg_sleep(5)",
        "/cases?sort=(select%201)&q=%27%20OR%201=1--",
        "/search?sort=id%20desc;select%20pg_sleep(5)",
        "/break-glass?case=%27%20OR%201=1--",
    ):
        started = time.monotonic()
        response = client.get(url)
        if time.monotonic() - started > 2:
            slow.append(url)
        assert response.status_code in (200, 400), (url, response.status_code)
    assert not slow, slow
    # the real search still answers normally, with exactly the one case
    response = _post_search(client, PNR)
    assert response.status_code == 200
    assert response.get_data(as_text=True).count(f'href="/cases/{case_id}"') == 1
    # a break-glass request with SQL in the case number finds nothing (and grants nothing)
    page = client.get("/break-glass").get_data(as_text=True)
    response = client.post(
        "/break-glass",
        data={
            "case_number": "' OR 1=1--",
            "reason": "Akut jourärende, behöver läsa",
            "csrf_token": csrf_token_from(page),
        },
    )
    assert response.status_code == 422
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        assert db.execute(select(func.count()).select_from(BreakGlassGrant)).scalar_one() == 0


# --- case 17: protected identity ----------


def test_case_17_protected_identity_stays_out_of_every_view(app: Flask) -> None:
    case_id = _named_case(app, protected_identity_type="skyddad_folkbokforing")
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        number = db.get(Case, case_id).number  # type: ignore[union-attr]
        subject = db.execute(select(Subject).where(Subject.case_id == case_id)).scalar_one()
        assert subject.is_protected
    owner = login(app.test_client(), "handlaggare")
    page = owner.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Skyddad identitet" in page  # the UI warns
    location = "Flemingsbergs station"
    assert location not in page and PNR not in page
    from webapp.tokens import issue_token

    api = app.test_client()
    bearer = {"Authorization": f"Bearer {issue_token(app.extensions['lotsen'], 'handlaggare')}"}
    body = api.get(f"/api/v1/cases/{case_id}", headers=bearer).get_data(as_text=True)
    assert location not in body and PNR not in body and PNR.replace("-", "") not in body
    # the person search finds the case for its team, without the name or number
    result = _post_search(owner, PNR).get_data(as_text=True)
    assert f'href="/cases/{case_id}"' in result and "Ioana" not in result
    assert "Skyddad identitet" in result
    # nobody outside the named team: not the supervisor, not by search, not by emergency access
    supervisor = login(app.test_client(), "arbetsledare")
    assert supervisor.get(f"/cases/{case_id}").status_code == 404
    assert f'href="/cases/{case_id}"' not in _post_search(supervisor, PNR).get_data(as_text=True)
    other = login(app.test_client(), "handlaggare.barn")
    page = other.get("/break-glass").get_data(as_text=True)
    response = other.post(
        "/break-glass",
        data={
            "case_number": number,
            "reason": "Jourärende: måste se om barnet är känt",
            "csrf_token": csrf_token_from(page),
        },
    )
    assert response.status_code == 422
    refused_text = response.get_data(as_text=True)
    assert location not in refused_text and "Ioana" not in refused_text
    assert other.get(f"/cases/{case_id}").status_code == 404
    # every access by the team raised an alert for the auditor; the refusal too
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        kinds = set(db.execute(select(SecurityAlert.kind)).scalars())
    assert {"protected_access", "break_glass_refused"} <= kinds
    auditor = login(app.test_client(), "granskare")
    alerts_page = auditor.get("/alerts").get_data(as_text=True)
    assert number in alerts_page and location not in alerts_page and "Ioana" not in alerts_page


# --- case 20: anti-automation ---------------------------------------------------------------------


def test_case_20_failed_logins_and_mass_lookup_are_throttled(app: Flask) -> None:
    client = app.test_client()
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    statuses = []
    for attempt in range(150):
        response = client.post(
            "/login",
            data={"username": "handlaggare", "password": f"wrong-{attempt}", "csrf_token": token},
            environ_base={"REMOTE_ADDR": f"10.20.{attempt // 200}.{attempt % 200 + 1}"},
        )
        statuses.append(response.status_code)
    assert statuses[:4] == [401] * 4
    assert statuses.count(429) >= 140, statuses
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        locked = db.execute(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "auth:locked")
        ).scalar_one()
        failed = db.execute(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "auth:login_failed")
        ).scalar_one()
    assert locked >= 1 and failed == 150  # every attempt is on record

    # 500 person searches in a few minutes from one user
    searcher = login(app.test_client(), "handlaggare.barn")  # handlaggare is locked now
    csrf = csrf_token_from(searcher.get("/search").get_data(as_text=True))
    codes = []
    for _ in range(500):
        response = searcher.post("/search", data={"personnummer": PNR, "csrf_token": csrf})
        codes.append(response.status_code)
    limit = person_search.SEARCH_LIMIT
    assert codes[:limit] == [200] * limit
    assert set(codes[limit:]) == {429}
    assert response.headers.get("Retry-After", "").isdigit()
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        alert = db.execute(
            select(SecurityAlert).where(SecurityAlert.kind == "mass_lookup")
        ).scalar_one()
        assert alert.count == 500 - limit and alert.actor_name == "handlaggare.barn"
        throttled = db.execute(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "person:search_throttled", AuditEntry.outcome == "denied")
        ).scalar_one()
        assert throttled == 500 - limit
    # the auditor sees it in the alert list: who, and how many refused searches
    auditor = login(app.test_client(), "granskare")
    listing = auditor.get("/alerts").get_data(as_text=True)
    assert "handlaggare.barn" in listing and f"<td>{500 - limit}</td>" in listing
