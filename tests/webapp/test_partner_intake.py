"""Partner referrals: POST /api/v1/intake with a partner's intake token (created by the CLI).

Scoped (an intake token opens nothing else, a user's API token does not open intake),
expiring, revocable (checked on every use), forged tokens refused, the sender recorded.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from jose import jwt
from sqlalchemy import select
from test_api_kit import OpenApi, b64, token_for

from engine.db import clock, unit_of_work, utcnow
from engine.models import AuditEntry
from engine.models.intake import IntakeReport, PartnerOrganisation, PartnerToken
from tests.conftest import csrf_token_from
from webapp.openapi import build_openapi
from webapp.partner_tokens import issue_intake_token
from webapp.tokens import _signing_key

REFERRAL = {
    "kind": "adult",
    "concern": "Kvinna som vi mött i uppsökande arbete berättar om skuld till en kontaktperson.",
    "subject_name": "Maria Ionescu",
    "subject_personal_number": "19811218-9876",
    "place": "Huddinge centrum",
    "reporter_name": "Nora NGO",
    "reporter_contact": "nora@ngo.example",
    "reporter_role": "ngo",
    "feedback_requested": True,
}


@pytest.fixture(autouse=True)
def _thaw() -> Any:
    yield
    clock.frozen = None


def _create_partner(app: Flask, name: str = "Stödföreningen", kind: str = "ngo") -> str:
    result = app.test_cli_runner().invoke(
        args=["lotsen", "create-partner", name, "--kind", kind, "--days", "30"]
    )
    assert result.exit_code == 0, result.output + (result.stderr or "")
    return result.stdout.strip().splitlines()[-1]


def _send(app: Flask, token: str | None, body: Any = None, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    response = app.test_client().post(
        "/api/v1/intake", json=REFERRAL if body is None else body, headers=headers, **kw
    )
    OpenApi(build_openapi()).check("POST", "/api/v1/intake", response)
    return response


def _reports(app: Flask) -> list[IntakeReport]:
    db = app.extensions["lotsen_db"]()
    try:
        rows = list(db.execute(select(IntakeReport)).scalars())
        db.expunge_all()
        return rows
    finally:
        db.close()


def test_partner_referral_is_received_with_its_sender(app: Flask) -> None:
    token = _create_partner(app)
    response = _send(app, token)
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert body["partner"] == "Stödföreningen" and body["kind"] == "adult"
    (report,) = _reports(app)
    assert report.receipt == body["receipt"] and report.channel == "partner_api"
    assert report.partner_id is not None and report.content["partner_name"] == "Stödföreningen"
    assert report.content["subject_personnummer"] == "198112189876"
    assert report.personnummer_index
    db = app.extensions["lotsen_db"]()
    try:
        partner = db.get(PartnerOrganisation, report.partner_id)
        assert partner is not None and partner.kind == "ngo" and partner.active
        entry = db.execute(
            select(AuditEntry).where(AuditEntry.action == "intake_report:received")
        ).scalar_one()
        assert entry.actor_name == "partner:Stödföreningen"
        assert entry.details["partner_id"] == partner.id
    finally:
        db.close()
    # a child referral from the same partner goes to the child unit's queue
    response = _send(app, token, {**REFERRAL, "kind": "child", "subject_personal_number": None})
    assert response.status_code == 201


def test_a_partner_is_rate_limited_per_hour(app: Flask) -> None:
    app.config["PARTNER_RATE_LIMIT"] = 3
    token, other = _create_partner(app), _create_partner(app, "Skolan", kind="school")
    start = utcnow()
    clock.frozen = start
    for _ in range(3):
        assert _send(app, token).status_code == 201
    refused = _send(app, token)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert len(_reports(app)) == 3
    assert _send(app, other).status_code == 201  # counted per partner, not for everyone
    clock.frozen = start + timedelta(hours=1, seconds=1)
    assert _send(app, token).status_code == 201
    db = app.extensions["lotsen_db"]()
    try:
        throttled = db.execute(
            select(AuditEntry).where(AuditEntry.action == "intake_report:throttled")
        ).scalar_one()
        assert throttled.outcome == "refused" and throttled.details["retry_after"] > 0
    finally:
        db.close()


def test_bad_referrals_are_refused_with_field_errors(app: Flask) -> None:
    token = _create_partner(app)
    response = _send(app, token, {**REFERRAL, "kind": "pet", "subject_age": "ten"})
    assert response.status_code == 422
    assert {"kind", "subject_age"} <= set(response.get_json()["field_errors"])
    response = _send(app, token, {**REFERRAL, "concern": "x" * 5001})
    assert response.status_code == 422 and "concern" in response.get_json()["field_errors"]
    response = _send(app, token, {**REFERRAL, "subject_personal_number": "19811218-0000"})
    assert response.status_code == 422
    response = _send(app, token, {**REFERRAL, "concern": "x" * 70_000})
    assert response.status_code == 413
    response = _send(app, token, [1, 2])
    assert response.status_code == 400
    assert _reports(app) == []


def test_intake_token_is_scoped_to_intake_only(app: Flask, login_as: Any) -> None:
    token = _create_partner(app)
    client = app.test_client()
    for path in ("/api/v1/me", "/api/v1/tasks", "/api/v1/processes"):
        response = client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, path
    response = client.post(
        "/api/v1/cases",
        json={"procedure": "identification", "data": {}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 401
    # a user's API token, a caseworker's browser session, or nothing: no intake
    assert _send(app, token_for(app, "handlaggare")).status_code == 401
    assert _send(app, None).status_code == 401
    browser = login_as("mottagning")
    response = browser.post("/api/v1/intake", json=REFERRAL)
    assert response.status_code == 401
    assert _reports(app) == []


def test_expired_token_is_refused(app: Flask) -> None:
    _create_partner(app)
    settings = app.extensions["lotsen"]
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        partner = db.execute(
            select(PartnerOrganisation).where(PartnerOrganisation.name == "Stödföreningen")
        ).scalar_one()
        clock.frozen = utcnow() - timedelta(days=3)
        issued = issue_intake_token(settings, partner.id, ttl_days=1)
        db.add(
            PartnerToken(
                partner_id=partner.id,
                jti=issued.jti,
                issued_at=issued.issued_at,
                expires_at=issued.expires_at,
            )
        )
    clock.frozen = None
    assert _send(app, issued.token).status_code == 401
    assert _reports(app) == []


def test_revoked_token_and_inactive_partner_are_refused(app: Flask) -> None:
    first = _create_partner(app)
    second = _create_partner(app)  # the same partner gets a second token
    assert _send(app, first).status_code == 201
    jti = jwt.get_unverified_claims(first)["jti"]
    runner = app.test_cli_runner()
    result = runner.invoke(args=["lotsen", "revoke-partner-token", "--jti", jti])
    assert result.exit_code == 0 and "revoked: 1" in result.output
    assert _send(app, first).status_code == 401
    assert _send(app, second).status_code == 201
    result = runner.invoke(args=["lotsen", "partner-active", "Stödföreningen", "--off"])
    assert result.exit_code == 0
    assert _send(app, second).status_code == 401
    runner.invoke(args=["lotsen", "partner-active", "Stödföreningen", "--on"])
    assert _send(app, second).status_code == 201
    result = runner.invoke(args=["lotsen", "revoke-partner-token", "--partner", "Stödföreningen"])
    assert "revoked: 1" in result.output
    assert _send(app, second).status_code == 401
    # the general revocation list (lotsen revoke-token --jti) is honoured too
    third = _create_partner(app)
    result = runner.invoke(
        args=["lotsen", "revoke-token", "--jti", jwt.get_unverified_claims(third)["jti"]]
    )
    assert result.exit_code == 0, result.output
    assert _send(app, third).status_code == 401
    assert len(_reports(app)) == 3


def test_forged_tokens_are_refused(app: Flask) -> None:
    genuine = _create_partner(app)
    claims = jwt.get_unverified_claims(genuine)
    settings = app.extensions["lotsen"]
    other = _create_partner(app, "Polisen Syd", "police")
    other_claims = jwt.get_unverified_claims(other)
    forged = {
        "wrong key": jwt.encode(claims, "not-the-key-" * 4, algorithm="HS256"),
        "alg none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}.",
        "HS512 with the right key": jwt.encode(claims, _signing_key(settings), algorithm="HS512"),
        "payload swapped": ".".join(
            [
                genuine.split(".")[0],
                b64({**claims, "sub": other_claims["sub"]}),
                genuine.split(".")[2],
            ]
        ),
        "unknown jti, right key": jwt.encode(
            {**claims, "jti": "0" * 32}, _signing_key(settings), algorithm="HS256"
        ),
        "another partner's jti": jwt.encode(
            {**claims, "jti": other_claims["jti"]}, _signing_key(settings), algorithm="HS256"
        ),
        "api scope": jwt.encode(
            {**claims, "scope": "api"}, _signing_key(settings), algorithm="HS256"
        ),
        "no expiry": jwt.encode(
            {k: v for k, v in claims.items() if k != "exp"},
            _signing_key(settings),
            algorithm="HS256",
        ),
        "garbage": "a.b.c",
        "huge": "a" * 10_000,
    }
    for name, token in forged.items():
        response = _send(app, token)
        assert response.status_code == 401, name
        assert "WWW-Authenticate" in response.headers
    assert _reports(app) == []
    db = app.extensions["lotsen_db"]()
    try:
        rejected = (
            db.execute(select(AuditEntry).where(AuditEntry.action == "auth:token_rejected"))
            .scalars()
            .all()
        )
    finally:
        db.close()
    assert len(rejected) >= len(forged)
    assert all(genuine not in json.dumps(e.details) for e in rejected)


def test_cli_lists_partners_and_their_usable_tokens(app: Flask) -> None:
    token = _create_partner(app)
    jti = jwt.get_unverified_claims(token)["jti"]
    runner = app.test_cli_runner()
    listing = runner.invoke(args=["lotsen", "list-partners"]).output
    assert "Stödföreningen\tngo\tactive" in listing and jti in listing and token not in listing
    runner.invoke(args=["lotsen", "revoke-partner-token", "--jti", jti])
    assert jti not in runner.invoke(args=["lotsen", "list-partners"]).output


def test_cli_refuses_unknown_kinds_and_the_token_is_not_stored(app: Flask) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["lotsen", "create-partner", "X", "--kind", "bank"])
    assert result.exit_code != 0
    token = _create_partner(app, "Huddinge vårdcentral", "health_care")
    db = app.extensions["lotsen_db"]()
    try:
        rows = db.execute(select(PartnerToken)).scalars().all()
        assert len(rows) == 1 and rows[0].jti == jwt.get_unverified_claims(token)["jti"]
        assert token not in json.dumps(
            [e.details for e in db.execute(select(AuditEntry)).scalars()]
        )
    finally:
        db.close()


# --- the logged-in partner form ------------------------------------------------------------------


def test_partner_user_sends_a_referral_through_the_form(app: Flask, login_as: Any) -> None:
    polis = login_as("polis")
    page = polis.get("/intake/referral")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Polisen, lokalpolisområde Huddinge" in html and 'name="website"' not in html
    token = csrf_token_from(html)
    response = polis.post("/intake/referral", data={"csrf_token": token, "kind": "child"})
    assert response.status_code == 422 and 'href="#concern"' in response.get_data(as_text=True)
    assert _reports(app) == []
    form = {
        "csrf_token": token,
        "kind": "child",
        "concern": "Patrull har träffat en pojke som sover i en trappuppgång.",
        "reporter_name": "Pia Polis",
        "reporter_contact": "pia@polisen.example",
        "reporter_mandatory": "y",
        "feedback_requested": "y",
    }
    response = polis.post("/intake/referral", data=form)
    assert response.status_code == 303
    (report,) = _reports(app)
    assert report.channel == "partner_form" and report.kind == "child"
    assert report.content["partner_name"] == "Polisen, lokalpolisområde Huddinge"
    assert report.content["partner_kind"] == "police" and report.submitted_by_id is not None
    page = polis.get("/intake/referral").get_data(as_text=True)
    assert report.receipt in page  # the receipt, once, as a message; never the report
    assert report.content["concern"] not in page
    # the referral is in the child unit's triage queue
    queue = login_as("mottagning.barn").get("/intake/").get_data(as_text=True)
    assert report.receipt in queue


def test_partner_form_is_for_active_partner_staff_only(app: Flask, login_as: Any) -> None:
    for username in ("handlaggare", "mottagning", "huge", "admin"):
        assert login_as(username).get("/intake/referral").status_code == 403, username
    polis = login_as("polis")
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["lotsen", "partner-active", "Polisen, lokalpolisområde Huddinge", "--off"]
    )
    assert result.exit_code == 0, result.output
    assert polis.get("/intake/referral").status_code == 403
