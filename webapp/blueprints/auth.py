"""Login, the second factor, re-authentication and logout.

* One message for every wrong username or password, and the same lock for unknown names as
  for real ones (``engine.login``): no user enumeration by message, status or timing.
* Roles in ``engine.login.MFA_ROLES`` finish the login with a TOTP code; a user of such a role
  without a second factor enrols one at this step. Demo mode enrols the demo accounts with
  ``DEMO_TOTP_SECRET`` and shows the current code on the page.
* The session keeps ``auth_at`` (when the password was last entered) and ``amr`` (how:
  ``pwd``, ``otp``). Approving or returning a decision and the admin actions need ``auth_at``
  within ``FRESH_AUTH_SECONDS``; otherwise the browser goes to ``/reauth`` and the form it was
  sending is kept, to be sent after the password (and code) are confirmed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar, cast

from flask import (
    Blueprint,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.wrappers import Response

from engine import audit, crypto
from engine import login as rules
from engine.audit import Actor
from engine.db import utcnow
from engine.demo import DEMO_USERS
from engine.models import User
from engine.passwords import verify_password
from forms.auth import LoginForm, ReauthForm, TotpForm
from webapp.security import actor_for, login_required, safe_next

bp = Blueprint("auth", __name__)

F = TypeVar("F", bound=Callable[..., Any])

#: Browser endpoints whose POST needs a fresh password (the API checks its own in api.py).
#: Sensitive actions that need a password entered within the last minutes (security.md §1
#: row 10): deciding, approving an outgoing document, exporting a person's access extract.
#: Break the glass, publishing BPMN and admin changes use ``fresh_auth_required``.
FRESH_AUTH_ENDPOINTS = frozenset({"decisions.decide", "documents.approve", "audit.extract"})
#: How long a form sent without fresh authentication is kept for re-sending.
PENDING_FORM_SECONDS = 600
MAX_PENDING_FIELDS = 40
MAX_PENDING_VALUE = 10_000
_ENROL_CONTEXT = b"lotsen-totp-enrol"
DEMO_USERNAMES = frozenset(u.username for u in DEMO_USERS)


# --- helpers -------------------------------------------------------------------------------------


def _now() -> datetime:
    return utcnow()


def _ip() -> str | None:
    return request.remote_addr


def _anonymous(username: str) -> Actor:
    return Actor(user_id=None, username=username[:100], source_ip=_ip())


def _too_many(template: str, form: Any, block: rules.Block, **context: Any) -> Response:
    """429 with Retry-After and one message, whatever was locked (account name or address)."""
    minutes = max(1, (block.retry_after + 59) // 60)
    form.form_errors.append(
        _("Too many failed attempts. Try again in %(minutes)s minutes.", minutes=minutes)
    )
    response = current_app.make_response((render_template(template, form=form, **context), 429))
    response.headers["Retry-After"] = str(block.retry_after)
    return response


def _failure(
    username: str, actor: Actor, action: str, details: dict[str, Any] | None = None
) -> rules.Block | None:
    """Count a failed attempt, audit it, and audit the lock it causes."""
    now = _now()
    caused = rules.record_failure(g.db, username=username, address=_ip(), now=now)
    audit.record(g.db, actor, action, outcome="denied", details=details or {})
    if caused is not None:
        audit.record(
            g.db,
            actor,
            "auth:locked",
            outcome="denied",
            details={"scope": caused.kind, "seconds": caused.retry_after},
        )
    return caused


def _blocked_attempt(username: str, actor: Actor, action: str) -> rules.Block | None:
    """The lock refusing this attempt (audited as a failure), or None."""
    block = rules.blocked(g.db, username=username, address=_ip(), now=_now())
    if block is not None:
        audit.record(g.db, actor, action, outcome="denied", details={"reason": "locked"})
    return block


def _start_session(user: User, amr: list[str], next_url: str) -> Response:
    """A new session id for the logged-in user (no fixation), then on to ``next_url``."""
    lang = session.get("lang")
    session.clear()
    session.regenerate()  # type: ignore[attr-defined]
    session["uid"] = user.id
    session["auth_at"] = _now().timestamp()
    session["amr"] = amr
    if lang:
        session["lang"] = lang
    rules.record_success(g.db, username=user.username)
    audit.record(
        g.db,
        actor_for(user, _ip()),
        "auth:login",
        object_type="user",
        object_id=user.id,
        details={"amr": amr},
    )
    return redirect(safe_next(next_url), code=303)


def auth_is_fresh() -> bool:
    """True if the password was entered within ``FRESH_AUTH_SECONDS``."""
    auth_at = session.get("auth_at")
    if not isinstance(auth_at, int | float):
        return False
    age = _now().timestamp() - float(auth_at)
    return -60 <= age <= rules.FRESH_AUTH_SECONDS


def _require_reauth() -> Response:
    """Keep the form being sent, then send the browser to re-authenticate."""
    fields = [
        [key, value[:MAX_PENDING_VALUE]]
        for key, value in request.form.items(multi=True)
        if key != "csrf_token"
    ][:MAX_PENDING_FIELDS]
    session["reauth_pending"] = {"path": request.path, "form": fields, "at": _now().timestamp()}
    audit.record(
        g.db,
        g.actor,
        "auth:reauth_required",
        outcome="denied",
        details={"path": request.path, "method": request.method},
    )
    return redirect(url_for("auth.reauth", next=request.path), code=303)


def fresh_auth_required(view: F) -> F:
    """For a sensitive POST: re-authenticate first if the last password is too old."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if request.method == "POST" and g.get("user") is not None and not auth_is_fresh():
            return _require_reauth()
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def _end_login(reason: str) -> None:
    """Forget the logged-in user for this request and end the session."""
    audit.record(g.db, g.actor, "auth:session_ended", details={"reason": reason})
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    g.user = None
    g.actor = Actor(user_id=None, username="anonymous", source_ip=_ip())


@bp.before_app_request
def check_login_state() -> Any:
    """Every request: a second factor where the roles need one; fresh auth where needed."""
    user = g.get("user")
    if user is None:
        return None
    if rules.mfa_required(user) and "otp" not in (session.get("amr") or ()):
        # a role that needs a second factor was granted after this login: log in again
        _end_login("second_factor_missing")
        return None
    if (
        request.method == "POST"
        and request.endpoint in FRESH_AUTH_ENDPOINTS
        and not auth_is_fresh()
    ):
        return _require_reauth()
    return None


# --- login ---------------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Show the login form; on success start a fresh session (or ask for the code)."""
    form = LoginForm()
    if not form.validate_on_submit():
        status = 422 if request.method == "POST" else 200
        return render_template("login.html", form=form), status
    username = form.username.data or ""
    actor = _anonymous(username)
    block = _blocked_attempt(username, actor, "auth:login_failed")
    user = g.db.execute(select(User).where(User.username == username)).scalar_one_or_none()
    # always spend the time of a password check: locked, unknown and known names look alike
    ok = verify_password(user.password_hash if user else None, form.password.data or "")
    if block is not None:
        return _too_many("login.html", form, block)
    if user is not None and user.active and ok:
        next_url = request.args.get("next") or ""
        if rules.mfa_required(user) or user.totp_secret:
            return _start_second_factor(user, next_url)
        return _start_session(user, ["pwd"], next_url)
    caused = _failure(username, actor, "auth:login_failed")
    if caused is not None:
        return _too_many("login.html", form, caused)
    form.form_errors.append(_("Wrong username or password."))
    return render_template("login.html", form=form), 401


def _start_second_factor(user: User, next_url: str) -> Response:
    """The password was right: a new session that waits for the code."""
    settings = current_app.extensions["lotsen"]
    if user.totp_secret is None and settings.demo and user.username in DEMO_USERNAMES:
        rules.enrol_totp(user, rules.DEMO_TOTP_SECRET, _now())
    lang = session.get("lang")
    session.clear()
    session.regenerate()  # type: ignore[attr-defined]
    session["pending"] = {"uid": user.id, "at": _now().timestamp(), "next": next_url[:2000]}
    if lang:
        session["lang"] = lang
    audit.record(
        g.db,
        actor_for(user, _ip()),
        "auth:password_accepted",
        object_type="user",
        object_id=user.id,
        details={"second_factor": "totp" if user.totp_secret else "enrolment"},
    )
    return redirect(url_for("auth.totp"), code=303)


def _pending_user() -> User | None:
    """The user who entered the right password and still owes the code (if in time)."""
    pending = session.get("pending")
    if not isinstance(pending, dict):
        return None
    at = pending.get("at")
    if not isinstance(at, int | float) or _now().timestamp() - at > rules.PENDING_LOGIN_SECONDS:
        session.pop("pending", None)
        return None
    uid = pending.get("uid")
    user = g.db.execute(
        select(User)
        .where(User.id == uid)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if user is None or not user.active:
        session.pop("pending", None)
        return None
    return cast(User, user)


def _enrol_secret(user: User) -> str | None:
    """While enrolling at login: the new secret, kept encrypted in the pending session."""
    if user.totp_secret is not None:
        return None
    pending = session["pending"]
    token = pending.get("enrol")
    if isinstance(token, str):
        # a key change or a damaged session: start the enrolment again
        with contextlib.suppress(Exception):
            return crypto.decrypt(token, context=_ENROL_CONTEXT)
    secret = rules.new_totp_secret()
    session["pending"] = {**pending, "enrol": crypto.encrypt(secret, context=_ENROL_CONTEXT)}
    return secret


def _totp_page(form: TotpForm, user: User, enrol_secret: str | None) -> str:
    return render_template("auth/totp.html", form=form, **_totp_context(user, enrol_secret))


@bp.route("/login/totp", methods=["GET", "POST"])
def totp() -> Any:
    """Second step of the login: the TOTP code (or enrolment of a second factor)."""
    if g.get("user") is not None:
        return redirect(url_for("main.index"), code=303)
    user = _pending_user()
    if user is None:
        return redirect(url_for("auth.login"), code=303)
    enrol_secret = _enrol_secret(user)
    form = TotpForm()
    if not form.validate_on_submit():
        status = 422 if request.method == "POST" else 200
        return _totp_page(form, user, enrol_secret), status
    actor = actor_for(user, _ip())
    block = _blocked_attempt(user.username, actor, "auth:totp_failed")
    if block is not None:
        return _too_many("auth/totp.html", form, block, **_totp_context(user, enrol_secret))
    now = _now()
    if rules.verify_totp(user, form.code.data or "", now, secret=enrol_secret):
        if enrol_secret is not None:
            rules.enrol_totp(user, enrol_secret, now)
            audit.record(g.db, actor, "auth:totp_enrolled", object_type="user", object_id=user.id)
        next_url = str(session["pending"].get("next") or "")
        return _start_session(user, ["pwd", "otp"], next_url)
    caused = _failure(user.username, actor, "auth:totp_failed")
    if caused is not None:
        session.pop("pending", None)
        return _too_many("auth/totp.html", form, caused, **_totp_context(user, enrol_secret))
    form.code.errors = [*form.code.errors, _("The code is wrong or has already been used.")]
    return _totp_page(form, user, enrol_secret), 401


def _totp_context(user: User, enrol_secret: str | None) -> dict[str, Any]:
    settings = current_app.extensions["lotsen"]
    demo = settings.demo and user.totp_secret == rules.DEMO_TOTP_SECRET
    return {
        "enrol_secret": enrol_secret,
        "enrol_uri": rules.provisioning_uri(enrol_secret, user.username) if enrol_secret else None,
        "demo": demo,
        "demo_secret": rules.DEMO_TOTP_SECRET,
        "demo_code": rules.demo_code(user, _now()) if demo else None,
    }


# --- re-authentication ---------------------------------------------------------------------------


def _pending_form(next_url: str) -> list[list[str]] | None:
    """The form kept by ``_require_reauth`` for ``next_url``, if it is recent."""
    pending = session.get("reauth_pending")
    if not isinstance(pending, dict) or pending.get("path") != next_url:
        return None
    at = pending.get("at")
    if not isinstance(at, int | float) or _now().timestamp() - at > PENDING_FORM_SECONDS:
        return None
    fields = pending.get("form")
    return fields if isinstance(fields, list) else None


@bp.route("/reauth", methods=["GET", "POST"])
@login_required
def reauth() -> Any:
    """Confirm the password (and code) before a sensitive action, then go back to it."""
    user: User = g.user
    next_url = safe_next(request.args.get("next"))
    form = ReauthForm()
    context = {"needs_code": user.totp_secret is not None, "next_url": next_url}
    if not form.validate_on_submit():
        status = 422 if request.method == "POST" else 200
        return render_template("auth/reauth.html", form=form, **context), status
    block = _blocked_attempt(user.username, g.actor, "auth:reauth_failed")
    ok = verify_password(user.password_hash, form.password.data or "")
    if block is not None:
        return _too_many("auth/reauth.html", form, block, **context)
    now = _now()
    if ok and user.totp_secret is not None:
        locked_user = g.db.execute(
            select(User)
            .where(User.id == user.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one()
        ok = rules.verify_totp(locked_user, form.code.data or "", now)
    if not ok:
        caused = _failure(user.username, g.actor, "auth:reauth_failed")
        if caused is not None:
            return _too_many("auth/reauth.html", form, caused, **context)
        form.form_errors.append(_("The password or the code is wrong."))
        return render_template("auth/reauth.html", form=form, **context), 401
    session["auth_at"] = now.timestamp()
    rules.record_success(g.db, username=user.username)
    audit.record(g.db, g.actor, "auth:reauthenticated", object_type="user", object_id=user.id)
    fields = _pending_form(next_url)
    session.pop("reauth_pending", None)
    if fields is not None:
        return render_template("auth/continue.html", fields=fields, action=next_url)
    return redirect(next_url, code=303)


# --- logout --------------------------------------------------------------------------------------


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    """End the session on the server and in the browser."""
    if g.get("user") is not None:
        audit.record(g.db, g.actor, "auth:logout", object_type="user", object_id=g.user.id)
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
        session.regenerate()  # type: ignore[attr-defined]
    return redirect(url_for("auth.login"), code=303)
