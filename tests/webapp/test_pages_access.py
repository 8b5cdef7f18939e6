"""Who sees what: four eyes on decisions, other units get 404, protected identity, language."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from test_pages_kit import (
    TASK_LINK,
    arrange_case,
    get,
    html,
    in_english,
    post,
    scenario,
    start_case,
)

from engine.models import AuditEntry, Decision, OpenTask


def test_caseworker_cannot_decide(app: Flask, db: Session, login_as: Any) -> None:
    ids = arrange_case(app, db)
    client = in_english(login_as("handlaggare"))
    page = get(client, f"/decisions/{ids['decision_id']}")
    assert 'name="approve"' not in page  # the proposer sees no approval form
    for data in ({"approve": "Approve"}, {"return_": "Return", "comment": "Nej"}):
        response = post(client, f"/decisions/{ids['decision_id']}", page, data)
        assert response.status_code == 403
    decision = db.get(Decision, ids["decision_id"])
    assert decision is not None and decision.status == "proposed" and decision.decided_by_id is None
    db.rollback()


def test_supervisor_sees_the_approval_form(app: Flask, db: Session, login_as: Any) -> None:
    ids = arrange_case(app, db)
    page = get(in_english(login_as("arbetsledare")), f"/decisions/{ids['decision_id']}")
    assert page.count("<h1") == 1
    assert 'name="approve"' in page and 'name="return_"' in page
    assert "Identification assessment" in page or "Bedömning vid identifiering" in page
    assert 'class="prewrap"' in page


def test_other_unit_gets_404_everywhere(app: Flask, db: Session, login_as: Any) -> None:
    ids = arrange_case(app, db, approve=True)
    task_id = db.execute(
        select(OpenTask.id).where(OpenTask.case_id == ids["case_id"], OpenTask.status == "open")
    ).scalar_one()
    db.rollback()
    owner = in_english(login_as("handlaggare"))
    assert owner.get(f"/documents/{ids['document_id']}").data.startswith(b"%PDF")
    other = in_english(login_as("handlaggare.barn"))
    for url in (
        f"/cases/{ids['case_id']}",
        f"/tasks/{task_id}",
        f"/documents/{ids['document_id']}",
        f"/decisions/{ids['decision_id']}",
    ):
        assert other.get(url).status_code == 404, url
    page = get(other, "/cases")
    assert f'href="/cases/{ids["case_id"]}"' not in page
    denied = db.execute(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.outcome == "denied")
    ).scalar_one()
    assert denied >= 4
    db.rollback()


def test_case_list_and_case_page(app: Flask, db: Session, login_as: Any) -> None:
    client = in_english(login_as("handlaggare"))
    case_id, _ = start_case(
        client, scenario("01_presumed_trafficking_begging_reported.json")["intake"]
    )
    listing = get(client, "/cases")
    assert f'href="/cases/{case_id}"' in listing
    assert "<caption>" in listing and 'scope="col"' in listing
    listed = (
        db.execute(
            select(AuditEntry)
            .where(AuditEntry.action == "cases:listed")
            .order_by(AuditEntry.seq.desc())
        )
        .scalars()
        .first()
    )
    assert listed is not None and listed.details["count"] == 1
    db.rollback()
    page = get(client, f"/cases/{case_id}")
    assert page.count("<h1") == 1
    assert "Nicu" in page
    assert TASK_LINK.search(page)
    assert "Skyddad identitet" not in page


def test_protected_identity_warning_and_no_location(app: Flask, db: Session, login_as: Any) -> None:
    intake = {
        **scenario("01_presumed_trafficking_begging_reported.json")["intake"],
        "protected_identity_type": "skyddad_folkbokforing",
        "identity_status": "known",
        "subject_name": "Skyddad Person",
        "personnummer": "19850415-1237",
    }
    client = in_english(login_as("handlaggare"))
    case_id, _ = start_case(client, intake)
    page = get(client, f"/cases/{case_id}")
    assert "Skyddad identitet" in page
    assert "Flemingsbergs station" not in page
    assert "19850415-1237" not in page and "1237" in page
    assert (
        get(in_english(login_as("arbetsledare")), "/cases").count(f'href="/cases/{case_id}"') == 0
    )


def test_language_switch_shows_english(login_as: Any) -> None:
    client = login_as("handlaggare")
    page = get(client, "/cases/new")
    assert '<html lang="sv">' in page
    assert "Datum och tid för kontakten" in page
    response = post(client, "/language", page, {"lang": "en", "next": "/cases/new"})
    assert response.status_code == 303 and response.headers["Location"].endswith("/cases/new")
    page = get(client, "/cases/new")
    assert '<html lang="en">' in page
    assert "Date and time of contact" in page
    assert "New case" in page
    assert html(client.get("/cases")).count("Cases") >= 1
