"""Route policies of the notification settings page (issue 6): every logged-in user has their
own; anonymous visitors go to the login page. The probe ticks every box, which is the default,
so an allowed post changes nothing."""

from __future__ import annotations

from matrix_kit import POLICY, SNAPSHOT_MODELS, Rule

from engine.models.notifications import NotificationOptOut, NotificationOutbox

ALL_ON = {"assigned": "y", "due_soon": "y", "overdue": "y"}

POLICY.update(
    {
        ("preferences.show", "GET"): Rule("login"),
        ("preferences.save", "POST"): Rule("login", body=lambda w: dict(ALL_ON), harmless=True),
    }
)
SNAPSHOT_MODELS.extend([NotificationOptOut, NotificationOutbox])
