"""The notification settings page (/account/notifications): a user switches kinds of e-mail
off and on for themselves only; the choice reaches the notification sweep; statutory reminders
are explained; anonymous visitors are sent to log in."""

from __future__ import annotations

import re
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from engine import actions
from engine.db import unit_of_work
from engine.models import AuditEntry, User
from engine.models.notifications import NotificationOptOut
from tests.conftest import actor, csrf_token_from, login, unit_id

URL = "/account/notifications"


def _opted_out(app: Flask, username: str) -> set[str]:
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        rows = db.execute(
            select(NotificationOptOut.kind)
            .join(User, User.id == NotificationOptOut.user_id)
            .where(User.username == username)
        ).scalars()
        return set(rows)


def _checked(html: str) -> set[str]:
    return {
        name
        for name in ("assigned", "due_soon", "overdue")
        if re.search(rf'<input[^>]*\bchecked\b[^>]*name="{name}"', html)
        or re.search(rf'<input[^>]*name="{name}"[^>]*\bchecked\b', html)
    }


def _save(client: FlaskClient, *ticked: str, **extra: str) -> object:
    token = csrf_token_from(client.get(URL).get_data(as_text=True))
    data = {"csrf_token": token, **{name: "y" for name in ticked}, **extra}
    return client.post(URL, data=data)


def test_everything_is_on_until_switched_off(app: Flask, client: FlaskClient) -> None:
    login(client, "handlaggare")
    page = client.get(URL)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert _checked(html) == {"assigned", "due_soon", "overdue"}
    assert "No e-mail address" not in html and "Ingen e-postadress" not in html
    assert 'action="/account/notifications"' in html


def test_unticking_opts_out_and_is_audited(app: Flask, client: FlaskClient) -> None:
    login(client, "handlaggare")
    response = _save(client, "assigned")
    assert response.status_code == 303  # type: ignore[attr-defined]
    assert response.headers["Location"].endswith(URL)  # type: ignore[attr-defined]
    assert _opted_out(app, "handlaggare") == {"due_soon", "overdue"}
    assert _checked(client.get(URL).get_data(as_text=True)) == {"assigned"}
    _save(client, "assigned", "due_soon", "overdue")
    assert _opted_out(app, "handlaggare") == set()
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        entries = db.execute(
            select(AuditEntry).where(AuditEntry.action == "notification_preferences:changed")
        ).scalars()
        details = [e.details["opted_out"] for e in entries]
    assert details == [["due_soon", "overdue"], []]


def test_a_user_changes_only_their_own_settings(app: Flask, client: FlaskClient) -> None:
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        other = db.execute(select(User.id).where(User.username == "arbetsledare")).scalar_one()
    login(client, "handlaggare")
    response = _save(client, user_id=str(other), user="arbetsledare", username="arbetsledare")
    assert response.status_code == 303  # type: ignore[attr-defined]
    assert _opted_out(app, "arbetsledare") == set()
    assert _opted_out(app, "handlaggare") == {"assigned", "due_soon", "overdue"}


def test_without_an_address_the_page_says_so(app: Flask, client: FlaskClient) -> None:
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        db.execute(select(User).where(User.username == "handlaggare")).scalar_one().email = None
    login(client, "handlaggare")
    html = client.get(URL).get_data(as_text=True)
    assert "Ingen e-postadress" in html or "No e-mail address" in html


def test_anonymous_visitors_are_sent_to_log_in(app: Flask, client: FlaskClient) -> None:
    page = client.get(URL)
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    post = client.post(URL, data={"csrf_token": token})
    assert post.status_code == 302 and "/login" in post.headers["Location"]
    assert _opted_out(app, "handlaggare") == set()


def test_the_choice_reaches_the_notification_sweep(
    app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    """Switched off "new task": a new case's first task mails nobody (the caseworker is the
    only holder of the role in the unit); switched on again, the next pass mails them."""
    login(client, "handlaggare")
    _save(client, "due_soon", "overdue")
    runner = app.test_cli_runner()

    def new_case() -> None:
        with unit_of_work(app.extensions["lotsen_db"]) as db:
            from engine.processes import latest_published, model_for
            from forms.spec import load_form_spec

            version = latest_published(db, "identification")
            spec = load_form_spec(version.forms[model_for(version).start_form_key or ""])
            intake = {
                **spec.empty_data(),
                "contact_datetime": "2026-03-02T10:15:00+01:00",
                "referral_source": "police",
                "contact_channel": "phone",
                "contact_place": "office",
                "identity_status": "known",
                "subject_name": "Testperson Ett",
                "gender": "woman",
                "citizenship": "SE",
                "identity_documents": "held_by_self",
                "protected_identity_type": "none",
                "residence_status": "swedish_citizen",
                "resides_in_huddinge": "yes",
            }
            actions.start_case(
                db,
                actor(db, "handlaggare"),
                procedure="identification",
                unit_id=unit_id(db, "vuxenenheten"),
                intake=intake,
                subject_fields=spec.subject_fields,
            )

    new_case()
    result = runner.invoke(args=["lotsen", "notify", "--once"])
    assert result.exit_code == 0, result.output
    assert "sent 0" in result.output
    _save(client, "assigned", "due_soon", "overdue")
    # queued when due, not when created: the task is still new, so it is mailed now
    result = runner.invoke(args=["lotsen", "notify", "--once"])
    assert "sent 1" in result.output, result.output
    (mail,) = (tmp_path / "mail").glob("*.eml")
    assert b"To: handlaggare@example.org" in mail.read_bytes()
