"""The administrator's account page: list users, disable or enable them, reset a lost factor.

Disabling ends every session of the account and refuses every API token issued to it, in the
same transaction (security.md §1 row 7). Every action is audited; each needs a fresh password.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, url_for
from flask_babel import gettext as _
from sqlalchemy import func, select

from engine import audit
from engine import login as rules
from engine.db import utcnow
from engine.models import User, WebSession
from engine.roles import ADMIN, load_roles
from forms.auth import AccountActionForm
from webapp.blueprints.auth import fresh_auth_required
from webapp.security import roles_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _render(form: AccountActionForm) -> str:
    now = utcnow()
    sessions = dict(
        g.db.execute(
            select(WebSession.user_id, func.count())
            .where(WebSession.expires_at > now, WebSession.user_id.is_not(None))
            .group_by(WebSession.user_id)
        ).all()
    )
    roles = load_roles()
    users = g.db.execute(select(User).order_by(User.username)).scalars().all()
    rows = [
        {
            "id": user.id,
            "username": user.username,
            "display_name": user.display_name,
            "roles": sorted(
                {roles[r.role].label(g.lang) if r.role in roles else r.role for r in user.roles}
            ),
            "active": user.active,
            "totp": user.totp_secret is not None,
            "mfa_required": rules.mfa_required(user),
            "sessions": sessions.get(user.id, 0),
            "email": user.email or "",
            "is_me": user.id == g.user.id,
        }
        for user in users
    ]
    return render_template("admin/users.html", form=form, rows=rows)


@bp.route("/users", methods=["GET"])
@roles_required(ADMIN)
def users() -> Any:
    """Every account: roles, whether it is active, its second factor and live sessions."""
    audit.record(g.db, g.actor, "user:listed", purpose="administration")
    return _render(AccountActionForm())


@bp.route("/users", methods=["POST"])
@roles_required(ADMIN)
@fresh_auth_required
def change_user() -> Any:
    """Disable, enable, reset the second factor of, or set the e-mail address of one account."""
    form = AccountActionForm()
    if not form.validate_on_submit():
        if form.email.errors:
            form.email.errors = []  # said once, plainly, in the summary
            form.form_errors.append(_("Enter a valid e-mail address, or leave it empty."))
        else:
            form.form_errors.append(_("Choose an account and an action."))
        return _render(form), 422
    user = g.db.get(User, form.user_id.data)
    if user is None:
        abort(404)
    now = utcnow()
    action = form.action.data
    if action == "disable":
        if user.id == g.user.id:
            form.form_errors.append(_("You cannot disable your own account."))
            return _render(form), 422
        rules.disable_user(g.db, g.actor, user, now)
        flash(
            _(
                "%(name)s is disabled: their sessions and API tokens have ended.",
                name=user.username,
            ),
            "success",
        )
    elif action == "set_email":
        rules.set_email(g.db, g.actor, user, (form.email.data or "").strip() or None)
        flash(_("The e-mail address of %(name)s is saved.", name=user.username), "success")
    elif action == "enable":
        rules.enable_user(g.db, g.actor, user, now)
        flash(_("%(name)s is enabled again.", name=user.username), "success")
    else:
        rules.reset_totp(g.db, g.actor, user)
        flash(
            _(
                "%(name)s sets up two-step verification again at the next login.",
                name=user.username,
            ),
            "success",
        )
    return redirect(url_for("admin.users"), code=303)
