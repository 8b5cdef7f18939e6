"""Login and logout. One message for every login failure (no user enumeration)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from engine import audit
from engine.audit import Actor
from engine.models import User
from engine.passwords import verify_password
from forms.auth import LoginForm
from webapp.security import actor_for, safe_next

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Show the login form; on success start a fresh session and go to ``next``."""
    form = LoginForm()
    if form.validate_on_submit():
        username = form.username.data or ""
        user = g.db.execute(select(User).where(User.username == username)).scalar_one_or_none()
        ok = verify_password(user.password_hash if user else None, form.password.data or "")
        if user is not None and user.active and ok:
            lang = session.get("lang")
            session.clear()
            session.regenerate()  # type: ignore[attr-defined]
            session["uid"] = user.id
            if lang:
                session["lang"] = lang
            audit.record(
                g.db,
                actor_for(user, request.remote_addr),
                "auth:login",
                object_type="user",
                object_id=user.id,
            )
            return redirect(safe_next(request.args.get("next")), code=303)
        audit.record(
            g.db,
            Actor(user_id=None, username=username[:100], source_ip=request.remote_addr),
            "auth:login_failed",
            outcome="denied",
        )
        form.form_errors.append(_("Wrong username or password."))
        return render_template("login.html", form=form), 401
    status = 422 if request.method == "POST" else 200
    return render_template("login.html", form=form), status


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
