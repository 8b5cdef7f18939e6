"""The public e-service /anmalan: valid, invalid, anonymous, over-size, rate limit, honeypot,
CSRF, and that the sender can never read a report back."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from engine.models import AuditEntry
from engine.models.intake import IntakeReport
from tests.conftest import csrf_token_from

RECEIPT_RE = re.compile(r'class="receipt-number">([A-Z2-9-]+)<')
VALID = {
    "kind": "child",
    "concern": "En flicka på cirka tio år tigger vid pendeltågsstationen varje morgon.",
    "subject_name": "Ana",
    "subject_age": "10",
    "place": "Flemingsbergs station",
    "reporter_name": "Lärare Larsson",
    "reporter_contact": "larare@skola.example",
    "reporter_role": "school_preschool",
    "reporter_organisation": "Visättraskolan",
    "reporter_mandatory": "y",
    "feedback_requested": "y",
}


def _form(client: FlaskClient) -> str:
    page = client.get("/anmalan")
    assert page.status_code == 200
    return csrf_token_from(page.get_data(as_text=True))


def _post(client: FlaskClient, data: dict[str, Any], ip: str = "192.0.2.10", **kw: Any) -> Any:
    token = _form(client)
    return client.post(
        "/anmalan", data={"csrf_token": token, **data}, environ_base={"REMOTE_ADDR": ip}, **kw
    )


def _reports(app: Flask) -> list[IntakeReport]:
    db = app.extensions["lotsen_db"]()
    try:
        rows = list(db.execute(select(IntakeReport).order_by(IntakeReport.id)).scalars())
        db.expunge_all()
        return rows
    finally:
        db.close()


def _audit(app: Flask, action: str) -> list[AuditEntry]:
    db = app.extensions["lotsen_db"]()
    try:
        rows = list(db.execute(select(AuditEntry).where(AuditEntry.action == action)).scalars())
        db.expunge_all()
        return rows
    finally:
        db.close()


def test_start_page_links_to_the_form_and_the_form_is_accessible(client: FlaskClient) -> None:
    login = client.get("/login").get_data(as_text=True)
    assert 'href="/anmalan"' in login
    html = client.get("/anmalan").get_data(as_text=True)
    # every visible input has a label; groups are fieldsets with legends; easy-to-read Swedish
    for name in ("concern", "subject_name", "reporter_contact", "subject_personnummer"):
        assert f'<label class="form-field__label" for="{name}"' in html, name
    assert html.count("<fieldset") >= 4 and "<legend" in html
    assert 'lang="sv"' in html and "Lättläst" in html
    assert "<script>" not in html and "style=" not in html
    # the honeypot is hidden from sight and from screen readers, and out of the tab order
    assert re.search(r'aria-hidden="true">\s*<label for="website"', html)
    assert re.search(r'<input[^>]*name="website"[^>]*tabindex="-1"', html) or re.search(
        r'<input[^>]*tabindex="-1"[^>]*name="website"', html
    )


def test_valid_report_is_stored_encrypted_and_shows_a_receipt_once(
    app: Flask, client: FlaskClient
) -> None:
    response = _post(client, VALID)
    assert response.status_code == 303
    assert response.headers["Location"] == "/anmalan/kvitto"
    page = client.get("/anmalan/kvitto").get_data(as_text=True)
    match = RECEIPT_RE.search(page)
    assert match, page
    receipt = match.group(1)
    assert 'id="what-happens-now"' in page
    (report,) = _reports(app)
    assert report.receipt == receipt and str(report.id) not in receipt.replace("-", "")
    assert report.kind == "child" and report.channel == "public"
    assert report.content["concern"] == VALID["concern"]
    assert report.content["reporter_mandatory"] is True and report.feedback_requested
    assert report.content["subject_age"] == 10
    # shown once: a reload (or anyone else) sees no number; no URL names the report
    again = client.get("/anmalan/kvitto").get_data(as_text=True)
    assert receipt not in again and not RECEIPT_RE.search(again)
    other = app.test_client().get("/anmalan/kvitto").get_data(as_text=True)
    assert receipt not in other
    public_rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("public.")]
    assert public_rules and all(not r.arguments for r in public_rules)
    (entry,) = _audit(app, "intake_report:received")
    assert entry.object_id == str(report.id) and "Ana" not in str(entry.details)


def test_invalid_report_keeps_input_and_links_errors_to_fields(
    app: Flask, client: FlaskClient
) -> None:
    data = {
        **VALID,
        "concern": "",
        "subject_personnummer": "19811218-0000",
        "subject_birth_date": "2099-01-01",
        "subject_age": "tio",
    }
    response = _post(client, data)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'class="error-summary"' in html
    for field in ("concern", "subject_personnummer", "subject_birth_date", "subject_age"):
        assert f'href="#{field}"' in html, field
        assert re.search(
            rf'id="{field}"[^>]*aria-invalid="true"|aria-invalid="true"[^>]*id="{field}"', html
        ) or (f'aria-describedby="{field}-error"' in html), field
    # what was typed is kept
    assert 'value="Ana"' in html and 'value="19811218-0000"' in html
    assert "Flemingsbergs station" in html and "larare@skola.example" in html
    assert _reports(app) == []
    # no kind chosen: the radio group is named in the summary
    response = _post(client, {k: v for k, v in VALID.items() if k != "kind"})
    assert response.status_code == 422 and 'href="#kind"' in response.get_data(as_text=True)
    # feedback without contact details, and feedback while anonymous
    response = _post(client, {**VALID, "reporter_contact": ""})
    assert response.status_code == 422 and 'href="#reporter_contact"' in response.get_data(
        as_text=True
    )
    response = _post(client, {**VALID, "anonymous": "y"})
    assert response.status_code == 422 and 'href="#feedback_requested"' in response.get_data(
        as_text=True
    )
    assert _reports(app) == []


def test_anonymous_report_stores_no_reporter_and_no_address(
    app: Flask, client: FlaskClient
) -> None:
    data = {**VALID, "anonymous": "y", "feedback_requested": ""}
    response = _post(client, data, ip="198.51.100.23")
    assert response.status_code == 303
    (report,) = _reports(app)
    assert report.content["anonymous"] is True
    assert report.content["reporter_name"] is None and report.content["reporter_contact"] is None
    (entry,) = _audit(app, "intake_report:received")
    assert entry.source_ip is None and entry.details["anonymous"] is True
    # the smallest report: only the kind and the concern
    response = _post(client, {"kind": "adult", "concern": "Någon verkar tvingas sälja sex."})
    assert response.status_code == 303
    assert [r.kind for r in _reports(app)] == ["child", "adult"]


def test_over_size_field_and_over_size_post_are_refused(app: Flask, client: FlaskClient) -> None:
    response = _post(client, {**VALID, "concern": "x" * 5001})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'href="#concern"' in html and "5000" in html
    response = _post(client, {**VALID, "subject_description": "å" * 70_000})
    assert response.status_code == 413
    assert 'id="too-large"' in response.get_data(as_text=True)
    assert _reports(app) == []


def test_rate_limit_per_address_is_shared_by_workers(
    app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    from webapp import create_app

    app.config["INTAKE_RATE_LIMIT"] = 3
    settings = app.extensions["lotsen"]
    worker = create_app(
        {
            "LOTSEN_DATABASE_URL": settings.database_url,
            "LOTSEN_ENV": "test",
            "LOTSEN_DEMO": "1",
            "LOTSEN_INSTANCE_DIR": str(tmp_path),
            "TESTING": True,
            "INTAKE_RATE_LIMIT": 3,
        }
    )
    other_client = worker.test_client()
    try:
        assert _post(client, VALID, ip="203.0.113.5").status_code == 303
        assert _post(other_client, VALID, ip="203.0.113.5").status_code == 303
        assert _post(client, VALID, ip="203.0.113.5").status_code == 303
        refused = _post(other_client, VALID, ip="203.0.113.5")
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 0
        assert 'id="rate-limited"' in refused.get_data(as_text=True)
        assert len(_reports(app)) == 3
        # another address is not affected
        assert _post(client, VALID, ip="203.0.113.6").status_code == 303
        assert len(_reports(app)) == 4
        assert len(_audit(app, "intake_report:throttled")) == 1
    finally:
        worker.extensions["lotsen_engine"].dispose()


def test_honeypot_looks_accepted_but_stores_nothing(app: Flask, client: FlaskClient) -> None:
    response = _post(client, {**VALID, "website": "http://spam.example"})
    assert response.status_code == 303
    page = client.get("/anmalan/kvitto").get_data(as_text=True)
    assert RECEIPT_RE.search(page)
    assert _reports(app) == []
    assert len(_audit(app, "intake_report:honeypot")) == 1
    assert _audit(app, "intake_report:received") == []


def test_csrf_is_required(app: Flask, client: FlaskClient) -> None:
    _form(client)
    response = client.post("/anmalan", data=VALID)
    assert response.status_code == 400
    other = app.test_client()
    foreign = _form(other)
    response = client.post("/anmalan", data={"csrf_token": foreign, **VALID})
    assert response.status_code == 400
    assert _reports(app) == []
    # the same post with its own token goes through (so the 400s came from the CSRF check)
    assert _post(client, VALID).status_code == 303


def test_english_page(client: FlaskClient) -> None:
    token = _form(client)
    client.post("/language", data={"lang": "en", "next": "/anmalan", "csrf_token": token})
    html = client.get("/anmalan").get_data(as_text=True)
    assert '<html lang="en">' in html
    assert "Report a concern" in html
