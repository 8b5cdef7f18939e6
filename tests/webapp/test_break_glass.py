"""Break the glass: a reason and fresh authentication, read-only, time-boxed, the owner and
supervisor told, in the auditor's signals, samples and alerts; never a protected identity.

The case belongs to Vuxenenheten (registered by ``handlaggare``); the outsider is the other
unit's caseworker ``handlaggare.barn``.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from engine import actions, break_glass
from engine.db import clock, unit_of_work, utcnow
from engine.models import AuditEntry, Case, JournalNote, LogReviewItem, User
from engine.models.protection import BreakGlassGrant, BreakGlassNotice, SecurityAlert
from engine.processes import latest_published, model_for
from forms import load_form_spec
from tests.conftest import actor, csrf_token_from, login, unit_id

SCENARIO = (
    Path(__file__).resolve().parents[2]
    / "bpmn"
    / "identification"
    / "scenarios"
    / "01_presumed_trafficking_begging_reported.json"
)
REASON = "Polisen ringde på jouren, personen är på akuten just nu"


@pytest.fixture(autouse=True)
def _real_clock() -> Any:
    yield
    clock.frozen = None


def _case(app: Flask, **changes: Any) -> tuple[int, str]:
    intake = json.loads(SCENARIO.read_text(encoding="utf-8"))["intake"]
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        version = latest_published(db, "identification")
        spec = load_form_spec(version.forms[model_for(version).start_form_key])
        case = actions.start_case(
            db,
            actor(db, "handlaggare"),
            procedure="identification",
            unit_id=unit_id(db, "vuxenenheten"),
            intake={**spec.empty_data(), **intake, **changes},
            subject_fields=spec.subject_fields,
        )
        return int(case.id), str(case.number)


def _ask(client: FlaskClient, number: str, reason: str = REASON) -> Any:
    page = client.get("/break-glass").get_data(as_text=True)
    return client.post(
        "/break-glass",
        data={"case_number": number, "reason": reason, "csrf_token": csrf_token_from(page)},
    )


def _count(app: Flask, model: Any, *where: Any) -> int:
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        return int(db.execute(select(func.count()).select_from(model).where(*where)).scalar_one())


def test_refused_without_a_reason(app: Flask) -> None:
    case_id, number = _case(app)
    outsider = login(app.test_client(), "handlaggare.barn")
    for reason in ("", "   ", "brådskande"):
        response = _ask(outsider, number, reason)
        assert response.status_code == 422
        page = response.get_data(as_text=True)
        assert 'id="reason"' in page and 'aria-invalid="true"' in page
        assert f'value="{number}"' in page  # what was typed is kept
    response = _ask(outsider, "", REASON)
    assert response.status_code == 422
    assert _count(app, BreakGlassGrant) == 0
    assert outsider.get(f"/cases/{case_id}").status_code == 404


def test_refused_without_fresh_authentication(app: Flask) -> None:
    case_id, number = _case(app)
    outsider = login(app.test_client(), "handlaggare.barn")
    page = outsider.get("/break-glass").get_data(as_text=True)
    clock.frozen = utcnow() + timedelta(minutes=10)  # the password is older than 5 minutes
    response = outsider.post(
        "/break-glass",
        data={"case_number": number, "reason": REASON, "csrf_token": csrf_token_from(page)},
    )
    assert response.status_code == 303 and response.headers["Location"].startswith("/reauth")
    assert _count(app, BreakGlassGrant) == 0
    assert outsider.get(f"/cases/{case_id}").status_code == 404
    # a wrong password does not help either
    reauth = outsider.get(response.headers["Location"]).get_data(as_text=True)
    bad = outsider.post(
        response.headers["Location"],
        data={"password": "wrong", "csrf_token": csrf_token_from(reauth)},
    )
    assert bad.status_code == 401 and _count(app, BreakGlassGrant) == 0
    # confirming the password brings the kept form back; sending it opens the case
    confirmed = outsider.post(
        response.headers["Location"],
        data={"password": "demo", "csrf_token": csrf_token_from(reauth)},
    )
    assert confirmed.status_code == 200
    kept = confirmed.get_data(as_text=True)
    assert 'action="/break-glass"' in kept and REASON in kept
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', kept))
    sent = outsider.post("/break-glass", data=fields)
    assert sent.status_code == 303 and sent.headers["Location"] == f"/cases/{case_id}"
    assert _count(app, BreakGlassGrant) == 1


def test_grant_is_read_only_and_time_boxed(app: Flask) -> None:
    case_id, number = _case(app)
    outsider = login(app.test_client(), "handlaggare.barn")
    start = utcnow()
    clock.frozen = start
    response = _ask(outsider, number)
    assert response.status_code == 303 and response.headers["Location"] == f"/cases/{case_id}"
    page = outsider.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Nicu" in page and "notice-break-glass" in page
    # the page offers no writing: no journal note form, no consent form or withdraw button
    assert f'action="/cases/{case_id}/journal"' not in page
    assert f'action="/cases/{case_id}/consents' not in page
    assert f'href="/cases/{case_id}"' in outsider.get("/cases").get_data(as_text=True)
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        purposes = db.execute(
            select(AuditEntry.purpose).where(
                AuditEntry.action == "case:viewed",
                AuditEntry.case_id == case_id,
                AuditEntry.actor_name == "handlaggare.barn",
            )
        ).scalars()
        assert set(purposes) == {"view (break_glass)"}
    from webapp.tokens import issue_token

    bearer = {
        "Authorization": f"Bearer {issue_token(app.extensions['lotsen'], 'handlaggare.barn')}"
    }
    api = app.test_client()
    assert api.get(f"/api/v1/cases/{case_id}", headers=bearer).status_code == 200
    # reading only: a journal note or a consent is refused (it would make them a team member)
    token = csrf_token_from(page)
    note = outsider.post(
        f"/cases/{case_id}/journal", data={"title": "x", "text": "y", "csrf_token": token}
    )
    assert note.status_code == 404
    assert _count(app, JournalNote, JournalNote.author_id == _uid(app, "handlaggare.barn")) == 1
    # still open after 59 minutes (the session is kept alive every 20 minutes)
    for minutes in (20, 40, 59):
        clock.frozen = start + timedelta(minutes=minutes)
        assert outsider.get(f"/cases/{case_id}").status_code == 200
    # gone after 60, from the page and the list
    clock.frozen = start + timedelta(minutes=60, seconds=1)
    assert outsider.get(f"/cases/{case_id}").status_code == 404
    assert f'href="/cases/{case_id}"' not in outsider.get("/cases").get_data(as_text=True)


def _uid(app: Flask, username: str) -> int:
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        return int(db.execute(select(User.id).where(User.username == username)).scalar_one())


def test_owner_and_supervisor_are_told(app: Flask) -> None:
    case_id, number = _case(app)
    outsider = login(app.test_client(), "handlaggare.barn")
    assert _ask(outsider, number).status_code == 303
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        told = dict(
            db.execute(
                select(User.username, BreakGlassNotice.recipient_role).join(
                    User, User.id == BreakGlassNotice.user_id
                )
            ).all()
        )
        journal = db.execute(
            select(JournalNote).where(
                JournalNote.case_id == case_id, JournalNote.kind == "break_glass"
            )
        ).scalar_one()
        assert REASON in (journal.text or "") and "Bertil Barnhandläggare" in (journal.text or "")
    assert told == {"handlaggare": "owner", "arbetsledare": "supervisor"}
    for username in ("handlaggare", "arbetsledare"):
        page = login(app.test_client(), username).get("/break-glass/notices")
        text = page.get_data(as_text=True)
        assert page.status_code == 200 and number in text and REASON in text
        assert "Bertil Barnhandläggare" in text
    # the team sees it on the case page too; someone not told sees no notice
    team_page = login(app.test_client(), "handlaggare").get(f"/cases/{case_id}")
    assert "Bertil Barnhandläggare" in team_page.get_data(as_text=True)
    other = login(app.test_client(), "arbetsledare.barn").get("/break-glass/notices")
    assert number not in other.get_data(as_text=True)


def test_lands_in_signals_sample_and_alerts(app: Flask) -> None:
    case_id, number = _case(app)
    assert _ask(login(app.test_client(), "handlaggare.barn"), number).status_code == 303
    auditor = login(app.test_client(), "granskare")
    signals = auditor.get("/audit/signals").get_data(as_text=True)
    assert "case:break_glass" in signals or number in signals
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        entry = db.execute(
            select(AuditEntry).where(AuditEntry.action == break_glass.ACTION)
        ).scalar_one()
        assert entry.case_id == case_id and entry.actor_name == "handlaggare.barn"
        assert REASON not in json.dumps(entry.details) and REASON not in (entry.purpose or "")
        from engine.audit_queries import draw_sample

        review = draw_sample(db, actor(db, "granskare"), utcnow() - timedelta(days=1), utcnow(), 0)
        reasons = set(
            db.execute(
                select(LogReviewItem.reason).where(LogReviewItem.review_id == review)
            ).scalars()
        )
        assert "break_glass" in reasons
        alert = db.execute(select(SecurityAlert)).scalar_one()
        assert alert.kind == "break_glass" and alert.case_id == case_id
    listing = auditor.get("/alerts").get_data(as_text=True)
    assert number in listing and REASON in listing and "handlaggare.barn" in listing
    page = auditor.get("/alerts").get_data(as_text=True)
    response = auditor.post(
        "/alerts/acknowledge", data={"alert_id": str(alert.id), "csrf_token": csrf_token_from(page)}
    )
    assert response.status_code == 303
    assert number not in auditor.get("/alerts").get_data(as_text=True)
    assert number in auditor.get("/alerts?all=1").get_data(as_text=True)


def test_protected_identity_cannot_be_opened_and_looks_like_an_unknown_number(
    app: Flask,
) -> None:
    _, number = _case(app, protected_identity_type="sekretessmarkering")
    outsider = login(app.test_client(), "handlaggare.barn")
    protected = _ask(outsider, number).get_data(as_text=True)
    unknown = _ask(outsider, "VU-2099-99999").get_data(as_text=True)

    def message(page: str) -> str:
        found = re.search(r'<p class="form-field__error">(.*?)</p>', page, re.S)
        assert found, page[:500]
        return found.group(1)

    assert message(protected) == message(unknown)
    assert _count(app, BreakGlassGrant) == 0
    kinds = [
        e
        for e in (
            _count(app, SecurityAlert, SecurityAlert.kind == "break_glass_refused"),
            _count(app, AuditEntry, AuditEntry.action == break_glass.REFUSED_ACTION),
        )
    ]
    assert kinds == [1, 2]


def test_who_may_break_the_glass(app: Flask) -> None:
    case_id, number = _case(app)
    for username in ("huge", "processagare", "granskare", "admin"):
        client = login(app.test_client(), username)
        assert client.get("/break-glass").status_code == 403
        token = csrf_token_from(client.get("/").get_data(as_text=True))
        response = client.post(
            "/break-glass", data={"case_number": number, "reason": REASON, "csrf_token": token}
        )
        assert response.status_code == 403
    # someone who may open the case anyway gets no grant
    response = _ask(login(app.test_client(), "arbetsledare"), number)
    assert response.status_code == 303 and response.headers["Location"] == f"/cases/{case_id}"
    assert _count(app, BreakGlassGrant) == 0


def test_user_can_end_the_access_early(app: Flask) -> None:
    case_id, number = _case(app)
    outsider = login(app.test_client(), "handlaggare.barn")
    assert _ask(outsider, number).status_code == 303
    page = outsider.get("/break-glass").get_data(as_text=True)
    grant_id = re.search(r'name="grant_id" value="(\d+)"', page)
    assert grant_id
    # another user cannot end it
    other = login(app.test_client(), "samordnare")
    token = csrf_token_from(other.get("/break-glass").get_data(as_text=True))
    assert (
        other.post(
            "/break-glass/end", data={"grant_id": grant_id.group(1), "csrf_token": token}
        ).status_code
        == 422
    )
    assert outsider.get(f"/cases/{case_id}").status_code == 200
    response = outsider.post(
        "/break-glass/end",
        data={"grant_id": grant_id.group(1), "csrf_token": csrf_token_from(page)},
    )
    assert response.status_code == 303
    assert outsider.get(f"/cases/{case_id}").status_code == 404
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        assert db.execute(select(Case.id).where(Case.id == case_id)).scalar_one() == case_id
        assert (
            db.execute(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "case:break_glass_ended")
            ).scalar_one()
            == 1
        )
