"""A user's notification opt-outs (issue 6): which e-mails about tasks they want.

Reminders about statutory deadlines are always sent (engine/notifications/statutory.py); the
page says so. The rules live in ``engine.notifications.preferences``; this is the form.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField

from engine.notifications import Kind
from engine.notifications.preferences import opt_outs, set_opt_outs
from webapp.security import login_required

bp = Blueprint("preferences", __name__, url_prefix="/account/notifications")


class NotificationPreferencesForm(FlaskForm):  # type: ignore[misc]
    """One box per kind of message: ticked = send it."""

    assigned = BooleanField(
        _l("A new task for me or my role"),
        description=_l("When a task is created for your role in your unit, or assigned to you."),
    )
    due_soon = BooleanField(
        _l("A deadline is approaching"),
        description=_l("Shortly before a task's deadline (by default one working day before)."),
    )
    overdue = BooleanField(
        _l("A deadline has passed"),
        description=_l("Once, when a task's deadline has passed and it is still open."),
    )


def _render(form: NotificationPreferencesForm, status: int = 200) -> Any:
    return (
        render_template(
            "preferences/notifications.html", form=form, has_address=bool(g.user.email)
        ),
        status,
    )


@bp.route("", methods=["GET"])
@login_required
def show() -> Any:
    """The user's current choices (every kind is on until switched off)."""
    off = opt_outs(g.db, g.user.id)
    form = NotificationPreferencesForm(
        data={kind.value: kind not in off for kind in Kind}, formdata=None
    )
    return _render(form)


@bp.route("", methods=["POST"])
@login_required
def save() -> Any:
    """Store the choices; an unticked box is an opt-out."""
    form = NotificationPreferencesForm()
    if not form.validate_on_submit():
        return _render(form, 422)
    off = [kind for kind in Kind if not form[kind.value].data]
    set_opt_outs(g.db, g.actor, off)
    flash(_("Your notification settings are saved."), "success")
    return redirect(url_for("preferences.show"), code=303)
