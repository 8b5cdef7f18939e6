"""Auditor pages (logguppföljning): search the access log, unusual-access signals, sampled
log reviews with findings, and a person's access extract as PDF.

Only the ``auditor`` role gets in (``roles_required``; the engine checks again). Every page
that shows log entries writes an ``audit:*`` entry through ``engine.audit_queries``. A
personnummer never travels in a URL: the person search is a POST, and results link to the
subject id.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _

from engine import audit_queries as aq
from engine.errors import ValidationFailed
from engine.roles import AUDITOR, load_roles
from forms.fields import InvalidPersonnummer, normalize_personnummer
from reports.access_extract import (
    AccessExtractDocument,
    AccessLine,
    action_label,
    purpose_label,
    render_access_extract_pdf,
)
from webapp.security import DOWNLOAD_CSP, roles_required

bp = Blueprint("audit", __name__, url_prefix="/audit")

MAX_ID = 2**31 - 1
#: Something that looks like a personnummer typed into a GET filter (it would end up in URLs).
PNR_LIKE = re.compile(r"\b(?:\d{6}|\d{8})[-+]?\d{4}\b")
MAX_PAGE = 100_000
REQUEST_REF_MAX = 100


def _int_arg(name: str, source: Any, low: int = 1, high: int = MAX_ID) -> int | None:
    raw = (source.get(name) or "").strip()
    if not raw.isdigit():
        return None
    value = int(raw)
    return value if low <= value <= high else None


def _date_arg(name: str, source: Any, errors: dict[str, str]) -> date | None:
    raw = (source.get(name) or "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors[name] = _("Enter the date as YYYY-MM-DD.")
        return None


def engine_message(text: str) -> str:
    """An engine validation message in the current language (the English text if unknown)."""
    messages = {
        "The start date is after the end date.": _("The start date is after the end date."),
        "The period is longer than a year.": _("The period is longer than a year."),
        "Choose a finding.": _("Choose a finding."),
        "Say what needs follow-up or what happened.": _(
            "Say what needs follow-up or what happened."
        ),
        "The threshold is too low.": _("The threshold is too low."),
        f"At most {aq.MAX_COMMENT} characters.": _(
            "At most %(max)s characters.", max=aq.MAX_COMMENT
        ),
    }
    return str(messages.get(text, text))


def finding_label(code: str | None) -> str:
    """A finding in words."""
    labels = {
        "ok": _("OK"),
        "follow_up": _("Needs follow-up"),
        "incident": _("Incident"),
        None: _("Not reviewed"),
    }
    return str(labels.get(code, code))


def reason_label(code: str) -> str:
    """Why an entry is in a sample, in words."""
    labels = {
        "break_glass": _("Emergency access"),
        "protected": _("Protected identity"),
        "denied": _("Denied access"),
        "random": _("Random"),
    }
    return str(labels.get(code, code))


# --- the log search ------------------------------------------------------------------------------


@bp.route("")
@roles_required(AUDITOR)
def index() -> Any:
    """The access log, filtered and paginated, newest first (the search is logged)."""
    errors: dict[str, str] = {}
    args = request.args
    case_number = (args.get("case") or "").strip()[:40] or None
    if case_number and PNR_LIKE.search(case_number):
        case_number = None
        errors["case"] = _("Search for a person by personal identity number in the person search.")
    flt = aq.AuditFilter(
        user_id=_int_arg("user", args),
        case_number=case_number,
        subject_id=_int_arg("subject", args),
        action=(args.get("action") or "").strip()[:60] or None,
        outcome=args.get("outcome") if args.get("outcome") in ("allowed", "denied") else None,
        date_from=_date_arg("from", args, errors),
        date_to=_date_arg("to", args, errors),
    )
    page = _int_arg("page", args, high=MAX_PAGE) or 1
    result = aq.search_log(g.db, g.actor, flt, page)
    query = {k: v for k, v in args.items() if k != "page" and v}
    return render_template(
        "audit/index.html",
        result=result,
        flt=flt,
        errors=errors,
        users=aq.logged_users(g.db, g.actor),
        actions=aq.logged_actions(g.db, g.actor),
        query=query,
    ), (422 if errors else 200)


@bp.route("/person", methods=["POST"])
@roles_required(AUDITOR)
def person() -> Any:
    """Find a person's subject ids by personnummer (a POST: the number stays out of URLs)."""
    raw = (request.form.get("personnummer") or "")[:20]
    try:
        pnr = normalize_personnummer(raw)
    except InvalidPersonnummer:
        return render_template(
            "audit/person.html",
            hits=None,
            error=_("Enter a valid personal identity number."),
        ), 422
    hits = aq.find_subjects(g.db, g.actor, pnr)
    return render_template("audit/person.html", hits=hits, error=None)


# --- unusual-access signals ----------------------------------------------------------------------


@bp.route("/signals")
@roles_required(AUDITOR)
def signals() -> Any:
    """Denied, protected-identity, burst, break-the-glass and after-hours access in a period."""
    errors: dict[str, str] = {}
    args = request.args
    date_from = _date_arg("from", args, errors)
    date_to = _date_arg("to", args, errors)
    cfg = current_app.config
    burst_cases = _int_arg("cases", args, 2, 10_000) or int(
        cfg.get("AUDIT_BURST_CASES", aq.BURST_CASES)
    )
    burst_minutes = _int_arg("minutes", args, 1, 24 * 60) or int(
        cfg.get("AUDIT_BURST_MINUTES", aq.BURST_MINUTES)
    )
    try:
        start, end = aq.period(date_from, date_to)
    except ValidationFailed as exc:
        errors.update({k: engine_message(v[0]) for k, v in exc.field_errors.items()})
        start, end = aq.period(None, None)
    found = aq.signals(
        g.db, g.actor, start, end, burst_cases=burst_cases, burst_minutes=burst_minutes
    )
    return render_template(
        "audit/signals.html", s=found, errors=errors, date_from=date_from, date_to=date_to
    ), (422 if errors else 200)


# --- sampled log review --------------------------------------------------------------------------


@bp.route("/reviews")
@roles_required(AUDITOR)
def reviews() -> Any:
    """The log reviews and the form to draw a sample; ``?review=N`` opens one review."""
    review_id = _int_arg("review", request.args)
    if review_id is not None:
        review = aq.review_view(g.db, g.actor, review_id)
        return render_template(
            "audit/review.html",
            review=review,
            finding_label=finding_label,
            reason_label=reason_label,
            findings=aq.FINDINGS,
        )
    return render_template("audit/reviews.html", reviews=aq.list_reviews(g.db, g.actor), errors={})


@bp.route("/reviews/draw", methods=["POST"])
@roles_required(AUDITOR)
def draw() -> Any:
    """Draw a sample for a period: all protected, denied and emergency entries plus N random."""
    errors: dict[str, str] = {}
    form = request.form
    size = _int_arg("size", form, 0, aq.MAX_SAMPLE)
    if size is None and (form.get("size") or "").strip() != "0":
        errors["size"] = _("Choose how many random entries to draw (0-%(max)s).", max=aq.MAX_SAMPLE)
    date_from = _date_arg("from", form, errors)
    date_to = _date_arg("to", form, errors)
    if not date_from:
        errors.setdefault("from", _("Enter the first day of the period."))
    if not date_to:
        errors.setdefault("to", _("Enter the last day of the period."))
    if not errors:
        try:
            start, end = aq.period(date_from, date_to)
            review_id = aq.draw_sample(g.db, g.actor, start, end, size or 0)
        except ValidationFailed as exc:
            g.db.rollback()
            errors.update({k: engine_message(v[0]) for k, v in exc.field_errors.items()})
        else:
            flash(_("A sample has been drawn."), "success")
            return redirect(url_for("audit.reviews", review=review_id), code=303)
    return render_template(
        "audit/reviews.html", reviews=aq.list_reviews(g.db, g.actor), errors=errors
    ), 422


@bp.route("/reviews/finding", methods=["POST"])
@roles_required(AUDITOR)
def finding() -> Any:
    """Record the finding on one sampled entry (ok / needs follow-up / incident + comment)."""
    form = request.form
    review_id = _int_arg("review", form)
    item_id = _int_arg("item", form)
    if review_id is None or item_id is None:
        return render_template(
            "error.html",
            status=422,
            title=_("Invalid data"),
            message=_("Choose a sampled entry."),
        ), 422
    try:
        aq.record_finding(
            g.db,
            g.actor,
            review_id,
            item_id,
            (form.get("finding") or "").strip(),
            (form.get("comment") or "")[: aq.MAX_COMMENT + 1],
        )
    except ValidationFailed as exc:
        g.db.rollback()
        review = aq.review_view(g.db, g.actor, review_id)
        return render_template(
            "audit/review.html",
            review=review,
            finding_label=finding_label,
            reason_label=reason_label,
            findings=aq.FINDINGS,
            item_errors={
                item_id: [engine_message(m) for ms in exc.field_errors.values() for m in ms]
            },
        ), 422
    flash(_("The finding has been saved."), "success")
    return redirect(url_for("audit.reviews", review=review_id, _anchor=f"item-{item_id}"), code=303)


# --- a person's access extract -------------------------------------------------------------------


def _role_unit(roles: tuple[tuple[str, str | None], ...], lang: str) -> str:
    info = load_roles()
    parts = []
    for role, unit in roles:
        name = info[role].label(lang) if role in info else role
        parts.append(f"{name}, {unit}" if unit else name)
    return "; ".join(parts)


@bp.route("/extract", methods=["POST"])
@roles_required(AUDITOR)
def extract() -> Any:
    """A person's access extract as PDF (a data-subject request); the download is logged."""
    form = request.form
    subject_id = _int_arg("subject", form)
    if subject_id is None:
        return render_template(
            "error.html", status=422, title=_("Invalid data"), message=_("Choose a person.")
        ), 422
    request_ref = (form.get("request_ref") or "").replace("\x00", "").strip()[:REQUEST_REF_MAX]
    with_names = form.get("staff_names") == "y"
    lang = "en" if form.get("lang") == "en" else "sv"
    purpose = "data subject request" + (f" {request_ref}" if request_ref else "")
    if with_names:
        purpose += " (staff names)"
    data = aq.access_extract(g.db, g.actor, subject_id, purpose=purpose)
    settings = current_app.extensions["lotsen"]
    if data.protected:
        label = "Skyddad identitet" if lang == "sv" else "Protected identity"
    else:
        label = data.subject_label or ("Okänd identitet" if lang == "sv" else "Unknown identity")
    doc = AccessExtractDocument(
        municipality=settings.municipality,
        authority=f"{settings.authority}, {settings.municipality}",
        subject_label=label,
        subject_ref=f"P-{data.subject_id}",
        protected_identity=data.protected,
        case_numbers=data.case_numbers,
        lines=tuple(
            AccessLine(
                at=row.ts,
                case_number=row.case_number,
                role_unit=_role_unit(row.roles, lang),
                action=action_label(row.action, lang),
                purpose=purpose_label(row.purpose, lang),
                staff_name=(row.actor_name or "") if with_names else "",
            )
            for row in data.rows
        ),
        generated_at=data.generated_at,
        generated_by=g.user.display_name,
        include_staff_names=with_names,
        request_ref=request_ref,
        lang=lang,
    )
    try:
        pdf = render_access_extract_pdf(doc)
    except ValueError:
        g.db.rollback()
        return render_template(
            "error.html",
            status=422,
            title=_("Invalid data"),
            message=_("The extract could not be produced from this text."),
        ), 422
    response = Response(pdf, mimetype="application/pdf")
    filename = f"atkomstutdrag-P{data.subject_id}.pdf"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = DOWNLOAD_CSP
    response.headers["Cache-Control"] = "no-store"
    return response
