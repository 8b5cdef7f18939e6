"""The triage queue (/intake): per-unit queues, earlier cases and linking, starting a procedure
prefilled from the report, no action with a reason, triage once, and the child clock."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from engine import actions, intake, triage_prefill
from engine.audit import Actor
from engine.db import clock, unit_of_work
from engine.models import AuditEntry, Case, JournalNote, OpenTask, Unit
from engine.models.intake import IntakeReport
from engine.processes import latest_published, model_for
from forms import load_form_spec, task_data_to_form_data
from tests.conftest import actor, csrf_token_from

PUBLIC = Actor(user_id=None, username="anonymous", source_ip="192.0.2.1")
PNR = "198112189876"


@pytest.fixture(autouse=True)
def _thaw() -> Any:
    yield
    clock.frozen = None


def _report(app: Flask, kind: str, **content: Any) -> IntakeReport:
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        report = intake.receive_report(
            db,
            PUBLIC,
            kind=kind,
            content={"concern": "Oro för en person som kan utnyttjas.", **content},
            channel="public",
        )
        db.expunge(report)
    return report


def _db_get(app: Flask, model: Any, ident: Any) -> Any:
    db = app.extensions["lotsen_db"]()
    try:
        row = db.get(model, ident)
        db.expunge_all()
        return row
    finally:
        db.close()


def _earlier_case(app: Flask, **subject: Any) -> int:
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        version = latest_published(db, "identification")
        spec = load_form_spec(version.forms[model_for(version).start_form_key])
        unit = db.execute(select(Unit.id).where(Unit.key == "vuxenenheten")).scalar_one()
        case = actions.start_case(
            db,
            actor(db, "handlaggare"),
            procedure="identification",
            unit_id=unit,
            intake={**spec.empty_data(), "identity_status": "known", **subject},
            subject_fields=spec.subject_fields,
        )
        return case.id


def _csrf(client: FlaskClient, url: str) -> str:
    return csrf_token_from(client.get(url).get_data(as_text=True))


def test_queues_are_per_unit_and_closed_to_others(app: Flask, login_as: Any) -> None:
    child = _report(app, "child", subject_name="Ana")
    adult = _report(app, "adult", subject_name="Maria")
    barn, vuxen = login_as("mottagning.barn"), login_as("mottagning")
    page = barn.get("/intake/").get_data(as_text=True)
    assert child.receipt in page and adult.receipt not in page
    assert "Ana" not in page  # the list shows no personal data
    page = vuxen.get("/intake/").get_data(as_text=True)
    assert adult.receipt in page and child.receipt not in page
    assert barn.get(f"/intake/reports/{child.id}").status_code == 200
    assert vuxen.get(f"/intake/reports/{child.id}").status_code == 404
    assert vuxen.get(f"/intake/reports/{child.id}/start").status_code == 404
    for username in ("handlaggare", "handlaggare.barn", "arbetsledare.barn", "admin"):
        other = login_as(username)
        assert other.get("/intake/").status_code == 403, username
        assert other.get(f"/intake/reports/{child.id}").status_code == 404, username
    assert app.test_client().get("/intake/").status_code == 302


def test_link_to_earlier_case_instead_of_a_duplicate(app: Flask, login_as: Any) -> None:
    earlier = _earlier_case(app, subject_name="Maria Ionescu", personnummer=PNR)
    same_name = _earlier_case(app, subject_name="Elena Dragomir", birth_date="1999-05-04")
    report = _report(app, "adult", subject_name="Maria I", subject_personnummer=PNR)
    by_name = _report(app, "adult", subject_name="ELENA dragomir", subject_birth_date="1999-05-04")
    vuxen = login_as("mottagning")
    page = vuxen.get(f"/intake/reports/{report.id}").get_data(as_text=True)
    earlier_number = _db_get(app, Case, earlier).number
    assert earlier_number in page and f'name="case_id" value="{earlier}"' in page
    page = vuxen.get(f"/intake/reports/{by_name.id}").get_data(as_text=True)
    assert _db_get(app, Case, same_name).number in page and earlier_number not in page
    # a case the check did not find cannot be linked (422), nothing changes
    token = _csrf(vuxen, f"/intake/reports/{report.id}")
    response = vuxen.post(
        f"/intake/reports/{report.id}/link",
        data={"csrf_token": token, "case_id": str(same_name), "version": "1"},
    )
    assert response.status_code == 422
    cases_before = len(_all(app, Case))
    response = vuxen.post(
        f"/intake/reports/{report.id}/link",
        data={"csrf_token": token, "case_id": str(earlier), "version": "1"},
    )
    assert response.status_code == 303
    assert len(_all(app, Case)) == cases_before
    stored = _db_get(app, IntakeReport, report.id)
    assert (stored.status, stored.case_id) == ("linked", earlier)
    notes = [n for n in _all(app, JournalNote) if n.case_id == earlier and n.kind == "intake"]
    assert any(report.receipt in n.title for n in notes)
    # linked reports leave the queue; a second triager gets a clear conflict, not a 500
    assert report.receipt not in vuxen.get("/intake/").get_data(as_text=True)
    second = login_as("mottagning")
    token = _csrf(second, "/intake/")
    response = second.post(
        f"/intake/reports/{report.id}/close",
        data={"csrf_token": token, "reason": "Dubblett av tidigare anmälan.", "version": "1"},
    )
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert 'id="triage-conflict"' in html and "Maja Mottagning" in html


def test_no_action_needs_a_reason_and_happens_once(app: Flask, login_as: Any) -> None:
    report = _report(app, "adult")
    vuxen = login_as("mottagning")
    url = f"/intake/reports/{report.id}"
    token = _csrf(vuxen, url)
    response = vuxen.post(
        f"{url}/close", data={"csrf_token": token, "reason": "kort", "version": "1"}
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert (
        'class="error-summary"' in html and 'href="#reason"' in html and ">kort</textarea>" in html
    )
    reason = "Anmälan gäller en person som bor i en annan kommun; vidarebefordrad dit."
    response = vuxen.post(
        f"{url}/close", data={"csrf_token": token, "reason": reason, "version": "1"}
    )
    assert response.status_code == 303
    stored = _db_get(app, IntakeReport, report.id)
    assert stored.status == "no_action" and stored.outcome_reason == reason
    response = vuxen.post(
        f"{url}/close", data={"csrf_token": token, "reason": reason, "version": "2"}
    )
    assert response.status_code == 409
    page = vuxen.get(url).get_data(as_text=True)
    assert reason in page and "Maja Mottagning" in page
    actions_logged = {e.action for e in _all(app, AuditEntry)}
    assert {"intake_report:no_action", "intake_report:triage_refused"} <= actions_logged


def _start_form(app: Flask, report_id: int, procedure: str, who: str, extra: dict[str, Any]) -> Any:
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        data = triage_prefill.prefill(db, report_id, actor(db, who), procedure)
        spec = load_form_spec(
            latest_published(db, procedure).forms[
                model_for(latest_published(db, procedure)).start_form_key
            ]
        )
    return task_data_to_form_data(spec, {**data, **extra})


def test_child_report_starts_child_safeguarding_prefilled_and_clock_runs_from_receipt(
    app: Flask, login_as: Any
) -> None:
    received = datetime(2026, 11, 23, 14, 5, tzinfo=UTC)
    clock.frozen = received
    report = _report(
        app,
        "child",
        subject_name="Ana Pop",
        subject_birth_date="2014-03-02",
        place="Flemingsbergs station",
        reporter_name="Lärare Larsson",
        reporter_contact="larare@skola.example",
        reporter_role="school_preschool",
        reporter_mandatory=True,
        feedback_requested=True,
    )
    clock.frozen = received + timedelta(hours=20)  # triaged the next morning
    barn = login_as("mottagning.barn")
    url = f"/intake/reports/{report.id}/start?procedure=child_safeguarding"
    page = barn.get(url)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'value="Ana Pop"' in html and 'value="2014-03-02"' in html
    assert 'value="larare@skola.example"' in html and "Oro för en person" in html
    assert "2026-11-23 15:05" in html  # received, local time
    # the adult unit's procedures are not offered for a child report
    assert (
        barn.get(f"/intake/reports/{report.id}/start?procedure=identification").status_code == 404
    )
    token = csrf_token_from(html)
    form = _start_form(
        app,
        report.id,
        "child_safeguarding",
        "mottagning.barn",
        {"child_gender": "girl", "child_protected_identity_type": "none"},
    )
    form.add("csrf_token", token)
    form.add("version", "1")
    # a required field left empty: 422, the typed values kept, nothing started
    bad = form.copy()
    bad.setlist("child_gender", [""])
    response = barn.post(url, data=bad)
    assert response.status_code == 422 and 'value="Ana Pop"' in response.get_data(as_text=True)
    assert _db_get(app, IntakeReport, report.id).status == "new"
    response = barn.post(url, data=form)
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    case_id = int(re.search(r"/cases/(\d+)", response.headers["Location"]).group(1))  # type: ignore[union-attr]
    case = _db_get(app, Case, case_id)
    assert case.procedure == "child_safeguarding" and case.received_at == received
    task = next(
        t
        for t in _all(app, OpenTask)
        if t.case_id == case_id and t.bpmn_id == "task_assess_immediate_protection"
    )
    assert task.due_at == received + timedelta(hours=24)
    assert task.role == "caseworker"
    stored = _db_get(app, IntakeReport, report.id)
    assert (stored.status, stored.case_id) == ("started", case_id)
    # the intake worker who started it may open the case; a second start is a conflict
    assert barn.get(f"/cases/{case_id}").status_code == 200
    again = barn.post(url, data=form)
    assert again.status_code == 409 and 'id="triage-conflict"' in again.get_data(as_text=True)
    assert barn.get(url).status_code == 409
    assert len([c for c in _all(app, Case) if c.procedure == "child_safeguarding"]) == 1


def test_adult_report_can_start_identification_or_housing(app: Flask, login_as: Any) -> None:
    report = _report(app, "adult", subject_name="Maria", place="Storgatan 1")
    vuxen = login_as("mottagning")
    page = vuxen.get(f"/intake/reports/{report.id}").get_data(as_text=True)
    assert "procedure=identification" in page and "procedure=housing_notification" in page
    assert "procedure=child_safeguarding" not in page
    html = vuxen.get(f"/intake/reports/{report.id}/start?procedure=housing_notification").get_data(
        as_text=True
    )
    assert 'value="Storgatan 1"' in html
    html = vuxen.get(f"/intake/reports/{report.id}/start?procedure=identification").get_data(
        as_text=True
    )
    assert 'value="Maria"' in html


def _all(app: Flask, model: Any) -> list[Any]:
    db = app.extensions["lotsen_db"]()
    try:
        rows = list(db.execute(select(model)).scalars())
        db.expunge_all()
        return rows
    finally:
        db.close()
