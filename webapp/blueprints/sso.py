"""OIDC single sign-on: authorization code + PKCE (issue 4, security.md §1 rows 8-10, §3.1).

* ``/sso/login`` keeps a fresh ``state``, ``nonce`` and PKCE verifier in the server-side
  session (never in the browser) and sends the browser to the provider.
* ``/sso/callback`` takes them out of the session (once: a replayed state finds nothing),
  exchanges the code at the token endpoint over HTTPS with the verifier, checks the ID token
  (``webapp.oidc``), finds the local account by the provider's (issuer, subject) link or the
  username claim, syncs role and unit from the configured claims, and logs in through the same
  session code as the password login (new session id, ``auth:login`` entry).
* Refused: an unknown account (unless provisioning is on), a disabled one, a role that needs a
  second factor when the provider reports none, and every token fault. Each refusal writes an
  ``auth:sso_failed`` entry with a reason code and shows the login page's clear message (401).
* A logged-in user coming here re-authenticates (``prompt=login``, ``max_age=0``): the
  provider's ``auth_time`` then counts as the fresh authentication for sensitive actions.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from flask_babel import gettext as _
from sqlalchemy import func, select

from engine import audit
from engine import login as rules
from engine.audit import Actor
from engine.db import utcnow
from engine.models import AuditEntry, RoleAssignment, Unit, User
from engine.models.protection import ExternalIdentity
from engine.roles import load_roles
from webapp import oidc
from webapp.blueprints.auth import _pending_form, _start_session
from webapp.security import actor_for, safe_next

bp = Blueprint("sso", __name__, url_prefix="/sso")

#: How long the provider's login may take between /sso/login and the callback.
PENDING_SECONDS = 600
#: Failed callbacks from one address in the window before it gets 429 (the provider locks
#: accounts itself; this stops token guessing against the callback).
FAILURE_LIMIT = 30
FAILURE_WINDOW = timedelta(minutes=15)
FAILED = "auth:sso_failed"


@bp.record_once
def _load(state: BlueprintSetupState) -> None:
    """Read the settings once at start-up; unsafe ones stop the app from starting."""
    app = state.app
    app.extensions["lotsen_oidc"] = oidc.load_config(app.extensions["lotsen"].extra)


def _config() -> oidc.OidcConfig | None:
    config: oidc.OidcConfig | None = current_app.extensions.get("lotsen_oidc")
    return config


@bp.app_context_processor
def _template_flags() -> dict[str, Any]:
    config = _config()
    return {"sso_enabled": config is not None, "sso_label": config.label if config else ""}


def _redirect_uri(config: oidc.OidcConfig) -> str:
    return config.redirect_uri or url_for("sso.callback", _external=True)


def _anonymous() -> Actor:
    return Actor(user_id=None, username="anonymous", source_ip=request.remote_addr)


def _refuse(reason: str, status: int = 401, actor: Actor | None = None) -> Any:
    """Audit the failure and show the login page's message (never the token or its claims)."""
    audit.record(
        g.db,
        actor or g.get("actor") or _anonymous(),
        FAILED,
        outcome="denied",
        details={"reason": reason[:60]},
    )
    messages = {
        "unknown_user": _(
            "Your account at the municipality is not set up in Lotsen. Ask the administrator."
        ),
        "inactive_user": _(
            "Your account at the municipality is not set up in Lotsen. Ask the administrator."
        ),
        "second_factor_missing": _(
            "Your role needs two-step verification. Log in again with the municipality's "
            "two-step login."
        ),
        "no_role": _("The municipality's login gave you no role in Lotsen. Ask the administrator."),
        "throttled": _("Too many failed attempts. Try again later."),
        "provider_unreachable": _(
            "The municipality's login cannot be reached right now. Try again later, or log in "
            "with your Lotsen password."
        ),
    }
    message = messages.get(
        reason,
        _(
            "The login with the municipality's account failed. Try again, or log in with your "
            "Lotsen password."
        ),
    )
    return render_template("sso/failed.html", message=message), status


def _too_many_failures() -> bool:
    since = utcnow() - FAILURE_WINDOW
    count = g.db.execute(
        select(func.count())
        .select_from(AuditEntry)
        .where(
            AuditEntry.action == FAILED,
            AuditEntry.source_ip == request.remote_addr,
            AuditEntry.ts >= since,
        )
    ).scalar_one()
    return int(count) >= FAILURE_LIMIT


# --- start ---------------------------------------------------------------------------------------


@bp.route("/login")
def login() -> Any:
    """Send the browser to the provider (a logged-in user: to confirm who they are)."""
    config = _config()
    if config is None:
        abort(404)
    reauth = g.get("user") is not None
    next_url = safe_next(request.args.get("next"))
    try:
        provider = oidc.provider_for(config)
        state, nonce, verifier = oidc.new_secret(), oidc.new_secret(), oidc.new_secret()
        target = provider.authorization_url(
            state=state,
            nonce=nonce,
            verifier=verifier,
            redirect_uri=_redirect_uri(config),
            prompt="login" if reauth else None,
            max_age=0 if reauth else None,
        )
    except oidc.OidcError as exc:
        return _refuse("provider_unreachable" if "unreachable" in exc.reason else exc.reason, 503)
    session["sso"] = {
        "state": state,
        "nonce": nonce,
        "verifier": verifier,
        "next": next_url[:2000],
        "at": utcnow().timestamp(),
        "reauth_uid": g.user.id if reauth else None,
    }
    return redirect(target, code=303)


# --- back from the provider ----------------------------------------------------------------------


def _pending() -> dict[str, Any] | None:
    """The login started here, taken out of the session (so it works only once)."""
    pending = session.pop("sso", None)
    if not isinstance(pending, dict):
        return None
    at = pending.get("at")
    if not isinstance(at, int | float) or utcnow().timestamp() - at > PENDING_SECONDS:
        return None
    return pending


@bp.route("/callback")
def callback() -> Any:
    """Check the provider's answer and log the user in (or refuse, audited)."""
    config = _config()
    if config is None:
        abort(404)
    if _too_many_failures():
        return _refuse("throttled", 429)
    pending = _pending()
    if pending is None:
        return _refuse("no_pending_login")
    if not oidc.same(request.args.get("state"), pending.get("state")):
        return _refuse("wrong_state")
    if request.args.get("error"):
        return _refuse("provider_error")
    code = request.args.get("code") or ""
    if not code or len(code) > 2000:
        return _refuse("missing_code")
    provider = oidc.provider_for(config)
    try:
        tokens = provider.exchange(
            code=code, verifier=str(pending["verifier"]), redirect_uri=_redirect_uri(config)
        )
        access_token = tokens.get("access_token")
        claims = provider.verify_id_token(
            str(tokens["id_token"]),
            nonce=str(pending["nonce"]),
            access_token=access_token if isinstance(access_token, str) else None,
        )
    except oidc.OidcError as exc:
        return _refuse(exc.reason)
    return _finish(config, claims, pending)


def _finish(config: oidc.OidcConfig, claims: dict[str, Any], pending: dict[str, Any]) -> Any:
    user, reason = _local_user(config, claims)
    if user is None:
        return _refuse(reason)
    mapped = _sync_roles(config, claims, user)
    actor = actor_for(user, request.remote_addr)
    if mapped is not None and not mapped:
        return _refuse("no_role", actor=actor)
    mfa = oidc.used_mfa(claims)
    if rules.mfa_required(user) and not mfa:
        return _refuse("second_factor_missing", actor=actor)
    auth_time = claims.get("auth_time")
    now = utcnow().timestamp()
    auth_at = float(auth_time) if isinstance(auth_time, int | float) else float(claims["iat"])
    auth_at = min(auth_at, now)
    next_url = str(pending.get("next") or "")
    reauth_uid = pending.get("reauth_uid")
    if reauth_uid is not None:
        if g.get("user") is None or g.user.id != reauth_uid or user.id != reauth_uid:
            return _refuse("reauth_other_user", actor=actor)
        session["auth_at"] = auth_at
        audit.record(
            g.db,
            g.actor,
            "auth:reauthenticated",
            object_type="user",
            object_id=user.id,
            details={"method": "oidc"},
        )
        fields = _pending_form(safe_next(next_url))
        session.pop("reauth_pending", None)
        if fields is not None:
            return render_template("auth/continue.html", fields=fields, action=safe_next(next_url))
        return redirect(safe_next(next_url), code=303)
    response = _start_session(user, ["oidc", "otp"] if mfa else ["oidc"], next_url)
    session["auth_at"] = auth_at
    return response


def _local_user(config: oidc.OidcConfig, claims: dict[str, Any]) -> tuple[User | None, str]:
    """The local account of the provider's subject, linked on first login; (None, reason)."""
    subject = str(claims["sub"])[:255]
    link = g.db.execute(
        select(ExternalIdentity).where(
            ExternalIdentity.issuer == config.issuer, ExternalIdentity.subject == subject
        )
    ).scalar_one_or_none()
    username_values = oidc.claim_values(claims, config.username_claim)
    username = username_values[0].strip()[:100] if username_values else ""
    if link is not None:
        user = g.db.get(User, link.user_id)
    else:
        user = (
            g.db.execute(select(User).where(User.username == username)).scalar_one_or_none()
            if username
            else None
        )
        if (
            user is not None
            and g.db.execute(
                select(ExternalIdentity.id).where(
                    ExternalIdentity.user_id == user.id, ExternalIdentity.issuer == config.issuer
                )
            ).first()
        ):
            # the account is already linked to another subject of this provider
            return None, "username_taken"
        if user is None and config.provision and username:
            user = _provision(config, claims, username)
        if user is None:
            return None, "unknown_user"
        link = ExternalIdentity(issuer=config.issuer, subject=subject, user_id=user.id)
        g.db.add(link)
    if user is None or not user.active:
        return None, "inactive_user"
    link.last_login_at = utcnow()
    g.db.flush()
    return user, ""


def _provision(config: oidc.OidcConfig, claims: dict[str, Any], username: str) -> User | None:
    """A new local account for a provider user (only when provisioning is switched on)."""
    names = oidc.claim_values(claims, config.name_claim)
    emails = oidc.claim_values(claims, "email")
    user = User(
        username=username,
        display_name=(names[0] if names else username)[:200],
        email=emails[0][:254] if emails else None,
        password_hash=None,
        active=True,
    )
    g.db.add(user)
    g.db.flush()
    audit.record(
        g.db,
        Actor(user_id=None, username="sso", source_ip=request.remote_addr),
        "user:provisioned",
        object_type="user",
        object_id=user.id,
        details={"issuer": config.issuer},
    )
    return user


def _sync_roles(
    config: oidc.OidcConfig, claims: dict[str, Any], user: User
) -> list[tuple[str, int | None]] | None:
    """Make the user's roles those of the configured claims (audited when they change)."""
    units = {u.key: u.id for u in g.db.execute(select(Unit)).scalars()}
    known = {rid: info.unit_scoped for rid, info in load_roles().items()}
    mapped = oidc.map_roles(config, claims, known, units)
    if mapped is None:
        return None
    current = sorted(((r.role, r.unit_id) for r in user.roles), key=lambda p: (p[0], p[1] or 0))
    if current != mapped:
        wanted = set(mapped)
        for assignment in list(user.roles):
            if (assignment.role, assignment.unit_id) not in wanted:
                user.roles.remove(assignment)
        g.db.flush()
        have = {(r.role, r.unit_id) for r in user.roles}
        for role, unit in mapped:
            if (role, unit) not in have:
                user.roles.append(RoleAssignment(role=role, unit_id=unit))
        g.db.flush()
        audit.record(
            g.db,
            Actor(user_id=None, username="sso", source_ip=request.remote_addr),
            "user:roles_synced",
            object_type="user",
            object_id=user.id,
            details={
                "before": [f"{r}@{u}" if u else r for r, u in current],
                "after": [f"{r}@{u}" if u else r for r, u in mapped],
            },
        )
    return mapped
