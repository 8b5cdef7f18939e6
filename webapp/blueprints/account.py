"""The user's own account: their login sessions (see and end them) and their second factor."""

from __future__ import annotations

import contextlib
import re
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from sqlalchemy import delete, select

from engine import audit, crypto
from engine import login as rules
from engine.db import utcnow
from engine.models import User, WebSession
from forms.auth import EndSessionForm, TotpSetupForm
from webapp.security import login_required
from webapp.sessions import current_session_hash

bp = Blueprint("account", __name__, url_prefix="/account")

_ENROL_CONTEXT = b"lotsen-totp-account-enrol"
_BROWSERS = (
    ("Edg/", "Microsoft Edge"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Safari/", "Safari"),
)
_SYSTEMS = (
    ("Windows", "Windows"),
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
)


def browser_label(user_agent: str | None) -> str:
    """A short "Browser on system" from a User-Agent string (never the raw string)."""
    ua = user_agent or ""
    browser = next((name for token, name in _BROWSERS if token in ua), None)
    system = next((name for token, name in _SYSTEMS if token in ua), None)
    if browser and system:
        return str(_("%(browser)s on %(system)s", browser=browser, system=system))
    if browser or system:
        return str(browser or system)
    word = re.match(r"[A-Za-z][A-Za-z0-9._-]{0,40}", ua)
    return word.group(0) if word else str(_("Unknown browser"))


def _live_sessions() -> list[WebSession]:
    """The user's sessions that have not expired, most recently used first."""
    now = utcnow()
    return list(
        g.db.execute(
            select(WebSession)
            .where(WebSession.user_id == g.user.id, WebSession.expires_at > now)
            .order_by(WebSession.last_seen_at.desc())
        ).scalars()
    )


def _render_sessions(form: EndSessionForm) -> str:
    current = current_session_hash(session)
    rows = [
        {
            "id": row.id,
            "created_at": row.created_at,
            "last_seen_at": row.last_seen_at,
            "source_ip": row.source_ip or "–",
            "browser": browser_label(row.user_agent),
            "current": row.id_hash == current,
        }
        for row in _live_sessions()
    ]
    return render_template("account/sessions.html", form=form, rows=rows)


@bp.route("/sessions", methods=["GET"])
@login_required
def sessions() -> Any:
    """The user's login sessions: when they started, were last used, from where, which browser."""
    audit.record(g.db, g.actor, "session:listed", object_type="user", object_id=g.user.id)
    return _render_sessions(EndSessionForm())


@bp.route("/sessions", methods=["POST"])
@login_required
def end_sessions() -> Any:
    """End one other session, or every other session (this one stays)."""
    form = EndSessionForm()
    if not form.validate_on_submit():
        form.form_errors.append(_("Choose a session to end."))
        return _render_sessions(form), 422
    current = current_session_hash(session)
    if form.action.data == "end_others":
        ended = rules.end_sessions(g.db, g.user.id, keep_hash=current)
        details: dict[str, Any] = {"ended": ended, "scope": "others"}
    else:
        if form.session_id.data is None:
            form.form_errors.append(_("Choose a session to end."))
            return _render_sessions(form), 422
        query = delete(WebSession).where(
            WebSession.id == form.session_id.data, WebSession.user_id == g.user.id
        )
        if current is not None:
            query = query.where(WebSession.id_hash != current)
        ended = int(getattr(g.db.execute(query), "rowcount", 0) or 0)
        if not ended:
            form.form_errors.append(_("That session has already ended."))
            return _render_sessions(form), 422
        details = {"ended": ended, "scope": "one", "session": form.session_id.data}
    audit.record(
        g.db, g.actor, "session:ended", object_type="user", object_id=g.user.id, details=details
    )
    flash(_("The session has ended.") if ended == 1 else _("%(n)s sessions have ended.", n=ended))
    return redirect(url_for("account.sessions"), code=303)


# --- the second factor ---------------------------------------------------------------------------


def _new_secret() -> str:
    """The secret being set up, kept encrypted in the session until a code confirms it."""
    token = session.get("totp_setup")
    if isinstance(token, str):
        # a key change or a damaged session: offer a new secret
        with contextlib.suppress(Exception):
            return crypto.decrypt(token, context=_ENROL_CONTEXT)
    secret = rules.new_totp_secret()
    session["totp_setup"] = crypto.encrypt(secret, context=_ENROL_CONTEXT)
    return secret


def _render_totp(form: TotpSetupForm) -> str:
    user: User = g.user
    secret = None if user.totp_secret else _new_secret()
    return render_template(
        "account/totp.html",
        form=form,
        enrolled=user.totp_secret is not None,
        required=rules.mfa_required(user),
        secret=secret,
        uri=rules.provisioning_uri(secret, user.username) if secret else None,
    )


@bp.route("/totp", methods=["GET"])
@login_required
def totp() -> Any:
    """Two-step verification: on (with a new key), or off where the role allows it."""
    return _render_totp(TotpSetupForm())


@bp.route("/totp", methods=["POST"])
@login_required
def totp_change() -> Any:
    """Turn two-step verification on (confirm the new key with a code) or off (a current code)."""
    form = TotpSetupForm()
    if not form.validate_on_submit():
        return _render_totp(form), 422
    user = g.db.execute(
        select(User)
        .where(User.id == g.user.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    now = utcnow()
    code = form.code.data or ""
    block = rules.blocked(g.db, username=user.username, address=request.remote_addr, now=now)
    if block is not None:
        form.form_errors.append(
            _(
                "Too many failed attempts. Try again in %(minutes)s minutes.",
                minutes=max(1, (block.retry_after + 59) // 60),
            )
        )
        return _render_totp(form), 429, {"Retry-After": str(block.retry_after)}
    if form.action.data == "enrol" and user.totp_secret is None:
        secret = _new_secret()
        if rules.verify_totp(user, code, now, secret=secret):
            rules.enrol_totp(user, secret, now)
            session.pop("totp_setup", None)
            amr = list(session.get("amr") or ["pwd"])
            session["amr"] = [*amr, "otp"] if "otp" not in amr else amr
            audit.record(g.db, g.actor, "auth:totp_enrolled", object_type="user", object_id=user.id)
            flash(_("Two-step verification is on."), "success")
            return redirect(url_for("account.totp"), code=303)
    elif form.action.data == "remove" and user.totp_secret is not None:
        if rules.mfa_required(user):
            form.form_errors.append(_("Your role needs two-step verification."))
            return _render_totp(form), 422
        if rules.verify_totp(user, code, now):
            user.totp_secret = None
            user.totp_enrolled_at = None
            audit.record(g.db, g.actor, "auth:totp_removed", object_type="user", object_id=user.id)
            flash(_("Two-step verification is off."), "success")
            return redirect(url_for("account.totp"), code=303)
    else:
        return redirect(url_for("account.totp"), code=303)
    audit.record(
        g.db,
        g.actor,
        "auth:totp_failed",
        outcome="denied",
        object_type="user",
        object_id=user.id,
        details={"path": request.path},
    )
    rules.record_failure(g.db, username=user.username, address=request.remote_addr, now=now)
    form.code.errors = [*form.code.errors, _("The code is wrong or has already been used.")]
    return _render_totp(form), 422
