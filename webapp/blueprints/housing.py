"""The housing company contact's own notifications, without personal data (issue 3).

The contact (Huge Fastigheter) never opens a case record (engine/access.py refuses
external roles); this page shows only property facts of the notifications addressed to it
and links to its own open steps (acknowledge, return a status from the list in C7).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, render_template
from flask_babel import gettext as _

from engine import housing_inbox
from engine.roles import HOUSING_CONTACT
from webapp.security import roles_required

bp = Blueprint("housing", __name__, url_prefix="/housing")


def status_label(code: str) -> str:
    """A status from the list in C7 in words."""
    labels = {
        "TENANCY_TERMINATED": _("Tenancy terminated"),
        "FORFEITURE_NOTICE_SENT": _("Forfeiture notice sent"),
        "CORRECTION_REQUEST_SENT": _("Correction request sent"),
        "NO_GROUNDS_FOUND": _("No grounds found"),
        "REFERRED_TO_POLICE": _("Referred to the police"),
        "ONGOING": _("Ongoing"),
    }
    return str(labels.get(code, code))


@bp.route("/")
@roles_required(HOUSING_CONTACT)
def index() -> Any:
    """Notifications addressed to the housing company, with what is still to do."""
    notices = housing_inbox.housing_notifications(g.db, g.actor)
    return render_template("housing/index.html", notices=notices, status_label=status_label)
