"""Break the glass, the exact personnummer lookup and the auditor's alert list (issue 4).

* ``/break-glass``: staff outside a case's team open it in an emergency: case number and a
  reason, confirmed with a fresh password (and code); 60 minutes of read access
  (``engine.break_glass``). ``/break-glass/notices`` shows the case owner and supervisors who
  opened their cases.
* ``/search``: a POST (the number never sits in a URL or an access log); the number is checked
  (checksum, date) and looked up by its blind index; only cases the user may open are shown;
  past the limit 429 and an alert (``engine.person_search``).
* ``/alerts``: the auditor's queue of alerts (protected-identity access, break the glass,
  refused break the glass, mass lookup).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from engine import access, alerts, break_glass, person_search
from engine.errors import NotFound, ValidationFailed
from engine.roles import AUDITOR
from forms.fields import InvalidPersonnummer, normalize_personnummer
from webapp.blueprints.auth import fresh_auth_required
from webapp.security import login_required, roles_required

bp = Blueprint("protection", __name__, url_prefix="")

STAFF_ROLES = tuple(sorted(break_glass.BREAK_GLASS_ROLES))
PNR_INPUT_MAX = 20
MAX_ID = 2**31 - 1


def _engine_message(text: str) -> str:
    """An engine message in the current language."""
    messages = {
        break_glass.MSG_REASON_SHORT: _(
            "Write the reason in at least %(n)s characters.", n=break_glass.REASON_MIN
        ),
        break_glass.MSG_REASON_LONG: _(
            "The reason can be at most %(n)s characters.", n=break_glass.REASON_MAX
        ),
        break_glass.MSG_CASE_MISSING: _("Enter the case number."),
        break_glass.MSG_NOT_AVAILABLE: _(
            "No case with this number can be opened with emergency access."
        ),
    }
    return str(messages.get(text, text))


def alert_label(kind: str) -> str:
    """An alert kind in words."""
    labels = {
        alerts.PROTECTED_ACCESS: _("Protected identity opened"),
        alerts.BREAK_GLASS: _("Emergency access (break the glass)"),
        alerts.BREAK_GLASS_REFUSED: _("Emergency access to a protected identity refused"),
        alerts.MASS_LOOKUP: _("Mass lookup of persons"),
    }
    return str(labels.get(kind, kind))


@bp.app_template_global()
def break_glass_banner(case_id: int) -> dict[str, Any]:
    """For the case page: the reader's own running grant; for the team, the case's recent
    emergency accesses (someone reading by emergency access sees only their own)."""
    if g.get("user") is None:
        return {"mine": None, "recent": []}
    own = access.active_grant(g.db, g.actor, case_id)
    grants = break_glass.case_grants(g.db, case_id)
    mine = next((gr for gr in grants if own is not None and gr.id == own.id), None)
    if mine is not None:
        return {"mine": mine, "recent": []}
    return {"mine": None, "recent": grants}


# --- break the glass -----------------------------------------------------------------------------


def _break_glass_page(
    errors: dict[str, str], values: dict[str, str], status: int = 200
) -> tuple[str, int]:
    return render_template(
        "protection/break_glass.html",
        errors=errors,
        values=values,
        grants=break_glass.my_grants(g.db, g.actor),
        minutes=break_glass.GRANT_MINUTES,
        reason_min=break_glass.REASON_MIN,
        reason_max=break_glass.REASON_MAX,
    ), status


@bp.route("/break-glass")
@roles_required(*STAFF_ROLES)
def break_glass_form() -> Any:
    """The emergency access form and the user's own recent emergency accesses."""
    return _break_glass_page({}, {"case_number": (request.args.get("case") or "")[:40]})


@bp.route("/break-glass", methods=["POST"])
@roles_required(*STAFF_ROLES)
@fresh_auth_required
def break_glass_open() -> Any:
    """Open a case outside one's team: reason + fresh authentication; time-boxed, told, logged."""
    values = {
        "case_number": (request.form.get("case_number") or "").strip()[:100],
        "reason": (request.form.get("reason") or "")[:5000],
    }
    try:
        outcome = break_glass.request_access(
            g.db, g.actor, case_number=values["case_number"], reason=values["reason"]
        )
    except ValidationFailed as exc:
        errors = {k: _engine_message(v[0]) for k, v in exc.field_errors.items()}
        return _break_glass_page(errors, values, 422)
    if outcome.refused:
        message = _engine_message(break_glass.MSG_NOT_AVAILABLE)
        return _break_glass_page({"case_number": message}, values, 422)
    if outcome.already:
        flash(_("You can already open this case; no emergency access was needed."), "info")
    else:
        flash(
            _(
                "Emergency access for %(minutes)s minutes. The case owner and the supervisor "
                "have been told, and the auditor reviews it.",
                minutes=break_glass.GRANT_MINUTES,
            ),
            "success",
        )
    return redirect(url_for("cases.show", case_id=outcome.case_id), code=303)


@bp.route("/break-glass/end", methods=["POST"])
@roles_required(*STAFF_ROLES)
def break_glass_end() -> Any:
    """End one's own emergency access before it runs out."""
    raw = request.form.get("grant_id") or ""
    grant_id = int(raw) if raw.isdigit() and len(raw) <= 10 else 0
    if not 1 <= grant_id <= MAX_ID:
        return _break_glass_page({"grant_id": _("Choose an emergency access to end.")}, {}, 422)
    try:
        break_glass.end_access(g.db, g.actor, grant_id)
    except NotFound:
        return _break_glass_page({"grant_id": _("Choose an emergency access to end.")}, {}, 422)
    flash(_("The emergency access has ended."), "success")
    return redirect(url_for("protection.break_glass_form"), code=303)


@bp.route("/break-glass/notices")
@login_required
def break_glass_notices() -> Any:
    """Emergency accesses to the cases one owns or supervises (last 30 days)."""
    notices = break_glass.notices_for(g.db, g.actor)
    return render_template("protection/notices.html", notices=notices, days=break_glass.NOTICE_DAYS)


# --- the person search ---------------------------------------------------------------------------


def _search_page(
    value: str, error: str | None, hits: Any = None, status: int = 200
) -> tuple[str, int]:
    return render_template("protection/search.html", value=value, error=error, hits=hits), status


@bp.route("/search")
@roles_required(*STAFF_ROLES)
def search_form() -> Any:
    """The person search form (a GET never carries a number)."""
    return _search_page("", None)


@bp.route("/search", methods=["POST"])
@roles_required(*STAFF_ROLES)
def search() -> Any:
    """Look a person up by personnummer among the cases the user may open."""
    raw = (request.form.get("personnummer") or "")[: PNR_INPUT_MAX + 20]
    if not raw.strip():
        return _search_page("", _personnummer_error("empty"), status=422)
    if len(raw.strip()) > PNR_INPUT_MAX:
        return _search_page(raw[:PNR_INPUT_MAX], _personnummer_error("format"), status=422)
    try:
        pnr = normalize_personnummer(raw)
    except InvalidPersonnummer as exc:
        return _search_page(raw, _personnummer_error(str(exc)), status=422)
    result = person_search.search(g.db, g.actor, pnr)
    if result.throttled:
        page, _status = _search_page(
            "", _("Too many searches in a short time. Wait a few minutes and try again.")
        )
        return page, 429, {"Retry-After": str(result.retry_after)}
    return _search_page(raw, None, result.hits)


def _personnummer_error(code: str) -> str:
    messages = {
        "empty": _("Enter a personal identity number."),
        "format": _("Enter the number as YYYYMMDD-NNNN or YYMMDD-NNNN."),
        "checksum": _("The check digit is wrong: check the number."),
        "date": _("The number does not contain a real date of birth."),
    }
    return str(messages.get(code, messages["format"]))


# --- the auditor's alerts ------------------------------------------------------------------------


@bp.route("/alerts")
@roles_required(AUDITOR)
def alert_list() -> Any:
    """Open alerts, newest first (``?all=1``: acknowledged ones too)."""
    include_done = request.args.get("all") == "1"
    rows = alerts.list_alerts(g.db, g.actor, include_done=include_done)
    grant_ids = [int(v) for row in rows for k, v in row.details if k == "grant_id" and v.isdigit()]
    return render_template(
        "protection/alerts.html",
        rows=rows,
        include_done=include_done,
        reasons=break_glass.grant_reasons(g.db, grant_ids),
        alert_label=alert_label,
    )


@bp.route("/alerts/acknowledge", methods=["POST"])
@roles_required(AUDITOR)
def alert_acknowledge() -> Any:
    """Mark an alert as looked at (audited)."""
    raw = request.form.get("alert_id") or ""
    alert_id = int(raw) if raw.isdigit() and len(raw) <= 10 else 0
    if not 1 <= alert_id <= MAX_ID:
        return render_template(
            "error.html", status=422, title=_("Invalid data"), message=_("Choose an alert.")
        ), 422
    alerts.acknowledge(g.db, g.actor, alert_id)
    flash(_("The alert has been marked as reviewed."), "success")
    return redirect(url_for("protection.alert_list"), code=303)
