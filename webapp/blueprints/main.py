"""Start page (the inbox), the language switch and a health check."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, redirect, render_template, request, session
from sqlalchemy import text

from engine import audit, queries
from webapp.security import login_required, safe_next

bp = Blueprint("main", __name__)


@bp.route("/")
@login_required
def index() -> Any:
    """The inbox: my tasks and my roles' unclaimed tasks, soonest deadline first."""
    tasks = queries.inbox(g.db, g.actor)
    audit.record(g.db, g.actor, "inbox:listed", details={"count": len(tasks)})
    mine = [t for t in tasks if t.assignee_id == g.actor.user_id]
    shared = [t for t in tasks if t.assignee_id is None]
    return render_template("inbox.html", mine=mine, shared=shared)


@bp.route("/language", methods=["POST"])
def language() -> Any:
    """Switch between Swedish and English; stay on the same page."""
    lang = request.form.get("lang", "sv")
    session["lang"] = lang if lang in ("sv", "en") else "sv"
    return redirect(safe_next(request.form.get("next")), code=303)


@bp.route("/healthz")
def health() -> Any:
    """Database reachable: 200, otherwise 503."""
    try:
        g.db.execute(text("SELECT 1"))
    except Exception:
        return {"status": "unavailable"}, 503
    return {"status": "ok"}
