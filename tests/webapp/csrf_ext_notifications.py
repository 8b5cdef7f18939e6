"""CSRF probe of the notification settings form (issue 6): a forged post must not switch off
anyone's e-mail."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from engine.models import User
from engine.models.notifications import NotificationOptOut


def _save(ctx: Any) -> Any:
    from test_csrf import Attempt

    browser = ctx.caseworker
    opted_out = (
        select(func.count())
        .select_from(NotificationOptOut)
        .join(User, User.id == NotificationOptOut.user_id)
        .where(User.username == browser.username)
    )
    # only "assigned" stays ticked: due_soon and overdue are switched off
    return Attempt(
        browser, "/account/notifications", [("assigned", "y")], lambda: ctx.scalar(opted_out)
    )


ROUTES = {("preferences.save", "POST"): _save}
