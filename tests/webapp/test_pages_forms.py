"""Task and intake forms: invalid input kept (422), drafts, conflicts (409), double submits."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from test_pages_kit import (
    as_form,
    get,
    html,
    in_english,
    post,
    scenario,
    start_case,
    task_form_fields,
)

from engine import actions
from engine.models import AuditEntry, Draft, OpenTask
from tests.conftest import actor

INTAKE = scenario("01_presumed_trafficking_begging_reported.json")["intake"]


def _screening_page(login_as: Any) -> tuple[Any, int, str, str]:
    client = in_english(login_as("handlaggare"))
    case_id, task_id = start_case(client, INTAKE)
    return client, case_id, task_id, get(client, f"/tasks/{task_id}")


def test_invalid_intake_keeps_input_and_shows_error_summary(login_as: Any) -> None:
    client = in_english(login_as("handlaggare"))
    page = get(client, "/cases/new")
    assert "<h1>" in page and page.count("<h1") == 1
    typed = {k: v for k, v in INTAKE.items() if k not in ("referral_source", "gender")}
    typed["companion_description"] = "Lång man <b>i grå jacka</b>"
    response = post(client, "/cases/new", page, as_form(typed))
    assert response.status_code == 422
    body = html(response)
    assert 'class="error-summary"' in body
    assert 'href="#referral_source"' in body and 'href="#gender"' in body
    assert "Lång man &lt;b&gt;i grå jacka&lt;/b&gt;" in body  # kept, and escaped
    assert 'value="Nicu"' in body


def test_intake_refused_to_other_roles(login_as: Any) -> None:
    assert in_english(login_as("arbetsledare")).get("/cases/new").status_code == 403


def test_invalid_step_keeps_input_saves_draft_and_draft_is_restored(login_as: Any) -> None:
    client, _case_id, task_id, page = _screening_page(login_as)
    items = [
        *task_form_fields(page),
        ("action", "complete"),
        ("immediate_danger", "y"),
        ("acute_action_details", "Ringde 112 kl. 10.20"),
        ("exploitation_forms", "other"),
    ]
    response = post(client, f"/tasks/{task_id}", page, items)
    assert response.status_code == 422
    body = html(response)
    assert 'class="error-summary"' in body
    assert 'href="#acute_action_taken"' in body and 'href="#exploitation_forms_other"' in body
    assert "Ringde 112 kl. 10.20" in body
    assert 'aria-invalid="true"' in body
    # Nothing typed is lost: the invalid submission is kept as a draft.
    again = get(client, f"/tasks/{task_id}")
    assert "Your draft has been restored" in again
    assert "Ringde 112 kl. 10.20" in again


def test_save_draft_then_reload_shows_the_draft(login_as: Any, db: Session) -> None:
    client, _case_id, task_id, page = _screening_page(login_as)
    assert "Your draft has been restored" not in page
    items = [
        *task_form_fields(page),
        ("action", "draft"),
        ("journal_note", "Halvfärdig anteckning"),
        ("exploitation_forms", "begging"),
        ("exploitation_forms", "labour"),
    ]
    response = post(client, f"/tasks/{task_id}", page, items)
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/tasks/{task_id}")
    again = get(client, f"/tasks/{task_id}")
    assert "Draft saved." in again
    assert "Your draft has been restored" in again
    assert "Halvfärdig anteckning" in again
    assert again.count("checked") >= 2
    draft = db.execute(select(Draft).where(Draft.task_id == task_id)).scalar_one()
    assert draft.data["journal_note"] == "Halvfärdig anteckning"
    db.rollback()


def test_stale_form_gives_409_naming_who_completed_and_keeps_a_draft(
    app: Flask, login_as: Any, db: Session
) -> None:
    first, _case_id, task_id, first_page = _screening_page(login_as)
    second = in_english(login_as("handlaggare"))  # the same person in another browser
    second_page = get(second, f"/tasks/{task_id}")
    done = post(
        first,
        f"/tasks/{task_id}",
        first_page,
        [*task_form_fields(first_page), ("action", "complete")],
    )
    assert done.status_code == 303
    stale = post(
        second,
        f"/tasks/{task_id}",
        second_page,
        [*task_form_fields(second_page), ("action", "complete"), ("journal_note", "Min version")],
    )
    assert stale.status_code == 409
    body = html(stale)
    assert "Somebody else got there first" in body
    assert "Completed by Hanna Handläggare" in body
    assert "What you entered has been kept as a draft." in body
    drafts = db.execute(select(Draft).where(Draft.task_id == task_id)).scalars().all()
    assert [d.data["journal_note"] for d in drafts] == ["Min version"]
    db.rollback()
    # A completed step opened later is shown read-only with who completed it.
    assert "This step was completed by Hanna Handläggare" in get(second, f"/tasks/{task_id}")


def test_form_made_stale_by_the_engine_gives_409(app: Flask, login_as: Any, db: Session) -> None:
    client, _case_id, task_id, page = _screening_page(login_as)
    data = {"immediate_danger": False, "children_involved": False, "exploitation_forms": []}
    actions.complete_task(db, actor(db, "handlaggare"), task_id=task_id, data=data)
    db.commit()
    response = post(
        client, f"/tasks/{task_id}", page, [*task_form_fields(page), ("action", "complete")]
    )
    assert response.status_code == 409
    assert "Completed by Hanna Handläggare" in html(response)


def test_double_submit_changes_nothing_the_second_time(login_as: Any, db: Session) -> None:
    client, case_id, task_id, page = _screening_page(login_as)
    items = [*task_form_fields(page), ("action", "complete"), ("exploitation_forms", "begging")]
    first = post(client, f"/tasks/{task_id}", page, items)
    assert first.status_code == 303
    assert "/tasks/" in first.headers["Location"]
    second = post(client, f"/tasks/{task_id}", page, items)
    assert second.status_code == 303
    assert second.headers["Location"].endswith(f"/cases/{case_id}")
    completed = db.execute(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.action == "task:completed", AuditEntry.case_id == case_id)
    ).scalar_one()
    assert completed == 1
    open_tasks = db.execute(
        select(func.count())
        .select_from(OpenTask)
        .where(OpenTask.case_id == case_id, OpenTask.status == "open")
    ).scalar_one()
    assert open_tasks == 1
    db.rollback()


def test_claim_and_release(login_as: Any) -> None:
    client, _case_id, task_id, page = _screening_page(login_as)
    assert "Take this step" in page
    response = post(client, f"/tasks/{task_id}/claim", page, {})
    assert response.status_code == 303
    claimed = get(client, f"/tasks/{task_id}")
    assert "Assigned to Hanna Handläggare" in claimed
    response = post(client, f"/tasks/{task_id}/unclaim", claimed, {})
    assert response.status_code == 303
    assert "Take this step" in get(client, f"/tasks/{task_id}")


def test_journal_note(login_as: Any) -> None:
    client, case_id, _task_id, _page = _screening_page(login_as)
    page = get(client, f"/cases/{case_id}")
    refused = post(client, f"/cases/{case_id}/journal", page, {"title": "Samtal", "text": ""})
    assert refused.status_code == 422
    body = html(refused)
    assert 'href="#note-text"' in body and 'value="Samtal"' in body
    saved = post(
        client,
        f"/cases/{case_id}/journal",
        body,
        {"title": "Samtal med tolk", "text": "Rad ett\nRad två"},
    )
    assert saved.status_code == 303
    page = get(client, f"/cases/{case_id}")
    assert "Samtal med tolk" in page and "Rad ett\nRad två" in page
    # newest first
    assert page.index("Samtal med tolk") < page.index("Ärende registrerat")
