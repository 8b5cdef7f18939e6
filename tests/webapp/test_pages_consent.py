"""Consents on the case page, linked cases, and asking for a disclosure override."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import actions
from engine.models import Case, CaseLink, Consent
from tests.conftest import actor, csrf_token_from, unit_id
from tests.webapp.test_pages_kit import scenario


def _case(db: Session) -> Case:
    case = actions.start_case(
        db,
        actor(db, "handlaggare"),
        procedure="identification",
        unit_id=unit_id(db, "vuxenenheten"),
        intake=scenario("01_presumed_trafficking_begging_reported.json")["intake"],
    )
    db.commit()
    return case


def _english(client: Any) -> None:
    page = client.get("/").get_data(as_text=True)
    client.post("/language", data={"lang": "en", "next": "/", "csrf_token": csrf_token_from(page)})


def test_record_and_withdraw_a_consent(app: Flask, login_as: Any, db: Session) -> None:
    case = _case(db)
    case_id = case.id
    client = login_as("handlaggare")
    _english(client)
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "No consents are recorded." in page
    token = csrf_token_from(page)
    bad = client.post(
        f"/cases/{case_id}/consents",
        data={"csrf_token": token, "purpose": "CONSENT_NSP", "form": "oral", "given_on": ""},
    )
    assert bad.status_code == 422
    assert "There is a problem" in bad.get_data(as_text=True)
    ok = client.post(
        f"/cases/{case_id}/consents",
        data={
            "csrf_token": token,
            "purpose": "CONSENT_NSP",
            "form": "written",
            "given_on": "2026-11-20",
            "scope": "NSP-boende <b>x</b>",
        },
    )
    assert ok.status_code == 303
    db.rollback()
    consent = db.execute(select(Consent).where(Consent.case_id == case_id)).scalar_one()
    assert consent.active and consent.form == "written"
    consent_id = consent.id
    db.rollback()
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "National support programme (NSP)" in page
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    done = client.post(
        f"/cases/{case_id}/consents/withdraw",
        data={"csrf_token": token, "consent_id": str(consent_id)},
    )
    assert done.status_code == 303
    db.rollback()
    assert db.get(Consent, consent_id).withdrawn_on is not None  # type: ignore[union-attr]
    db.rollback()


def test_other_units_cannot_record_consents(app: Flask, login_as: Any, db: Session) -> None:
    case = _case(db)
    case_id = case.id
    other = login_as("handlaggare.barn")
    token = csrf_token_from(other.get("/").get_data(as_text=True))
    response = other.post(
        f"/cases/{case_id}/consents",
        data={
            "csrf_token": token,
            "purpose": "CONSENT_NSP",
            "form": "oral",
            "given_on": "2026-11-20",
        },
    )
    assert response.status_code == 404
    db.rollback()
    assert db.execute(select(Consent)).first() is None
    db.rollback()


def test_a_linked_case_shows_by_number_but_opens_only_for_its_team(
    app: Flask, login_as: Any, db: Session
) -> None:
    parent = _case(db)
    child = actions.start_case(
        db,
        actor(db, "handlaggare"),
        procedure="identification",
        unit_id=unit_id(db, "barn_och_unga"),
        intake=scenario("01_presumed_trafficking_begging_reported.json")["intake"],
        linked_from=parent,
        link_reason="child_found",
    )
    db.commit()
    parent_id, child_id, child_number = parent.id, child.id, child.number
    assert db.execute(select(CaseLink)).scalar_one().to_case_id == child_id
    db.rollback()
    client = login_as("handlaggare")
    _english(client)
    page = client.get(f"/cases/{parent_id}").get_data(as_text=True)
    assert child_number in page
    assert f'href="/cases/{child_id}"' not in page
    assert client.get(f"/cases/{child_id}").status_code == 404
    barn = login_as("arbetsledare.barn")
    assert barn.get(f"/cases/{child_id}").status_code == 200
    db.rollback()
