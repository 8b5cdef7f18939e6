"""Public e-service: concern reports at /anmalan without login (issue 6).

Anyone may send a report; nobody can read one back: the receipt page shows only the receipt
number, once, from the sender's own session, and no URL names a report. Posts are
CSRF-protected (the global CSRFProtect), limited in size, and counted per client address in
the database (so every web worker agrees) before anything is stored. A filled honeypot field
gets an ordinary-looking receipt but stores nothing; the attempt is audited.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for

from engine import audit, intake
from engine.audit import Actor
from engine.db import utcnow
from webapp.intake_forms import ReportForm

bp = Blueprint("public", __name__, url_prefix="")

#: The largest report post accepted (bytes, URL-encoded): every field full, in any script.
MAX_REPORT_BYTES = 96 * 1024
RECEIPT_KEY = "intake_receipt"


def rate_policy() -> intake.RatePolicy:
    """Reports per address and window; ``INTAKE_RATE_LIMIT``/``_WINDOW`` in the app config."""
    return intake.RatePolicy(
        limit=int(current_app.config.get("INTAKE_RATE_LIMIT", 10)),
        window=timedelta(seconds=int(current_app.config.get("INTAKE_RATE_WINDOW", 3600))),
    )


@bp.route("/anmalan", methods=["GET", "POST"])
def report() -> Any:
    """The report form; a valid post stores the report and shows the receipt page."""
    if request.method == "GET":
        return render_template("public/report.html", form=ReportForm(formdata=None))
    if (request.content_length or 0) > MAX_REPORT_BYTES:
        return render_template("public/too_large.html"), 413
    now = utcnow()
    policy = rate_policy()
    retry = intake.throttle_retry_after(g.db, request.remote_addr, now, policy)
    if retry is not None:
        audit.record(
            g.db,
            g.actor,
            "intake_report:throttled",
            outcome="refused",
            details={"retry_after": retry},
        )
        minutes = max(1, (retry + 59) // 60)
        page = render_template("public/limited.html", minutes=minutes)
        return page, 429, {"Retry-After": str(retry)}
    intake.count_submission(g.db, request.remote_addr, now, policy)
    form = ReportForm()
    if form.honeypot_filled():
        receipt = intake.record_honeypot(g.db, g.actor, channel="public")
        return _to_receipt(receipt, now)
    if not form.validate():
        return render_template("public/report.html", form=form), 422
    content = form.content()
    # An anonymous reporter's address is not written next to the report's log entry.
    who = g.actor if not content["anonymous"] else Actor(user_id=None, username="anonymous")
    stored = intake.receive_report(
        g.db, who, kind=form.kind.data, content=content, channel="public"
    )
    return _to_receipt(stored.receipt, stored.received_at)


def _to_receipt(receipt: str, at: Any) -> Any:
    session[RECEIPT_KEY] = {"receipt": receipt, "at": at.isoformat(timespec="minutes")}
    return redirect(url_for("public.receipt"), code=303)


@bp.route("/anmalan/kvitto")
def receipt() -> Any:
    """The receipt number and what happens now; shown once (a reload shows no number)."""
    data = session.pop(RECEIPT_KEY, None)
    shown = data if isinstance(data, dict) else None
    received = None
    if shown:
        try:
            received = datetime.fromisoformat(str(shown.get("at"))).astimezone(intake.LOCAL_TZ)
        except ValueError:
            received = None
    return render_template(
        "public/receipt.html",
        receipt=shown.get("receipt") if shown else None,
        received=received.strftime("%Y-%m-%d %H:%M") if received else None,
    )
