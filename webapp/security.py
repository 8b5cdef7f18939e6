"""Who is asking, and the headers every response carries.

``g.actor`` is built once per request from the server-side session or a bearer token.
Views ask :func:`login_required`; the access rules themselves live in ``engine.access``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Flask, Response, abort, g, redirect, request, session, url_for
from sqlalchemy import select

from engine.audit import Actor
from engine.models import User

F = TypeVar("F", bound=Callable[..., Any])

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

#: Downloads never run as a page: sandboxed, nothing loads, never framed.
DOWNLOAD_CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"


def actor_for(user: User, source_ip: str | None = None) -> Actor:
    """The engine's view of a user: id, name and (role, unit) pairs."""
    return Actor(
        user_id=user.id,
        username=user.username,
        roles=frozenset((r.role, r.unit_id) for r in user.roles),
        source_ip=source_ip,
    )


def load_session_user() -> None:
    """Set ``g.user``/``g.actor`` from the login session (before each request)."""
    g.user = None
    g.actor = Actor(user_id=None, username="anonymous", source_ip=request.remote_addr)
    uid = session.get("uid")
    if uid is None:
        return
    user = g.db.execute(select(User).where(User.id == uid)).scalar_one_or_none()
    if user is None or not user.active:
        session.clear()
        return
    g.user = user
    g.actor = actor_for(user, request.remote_addr)


def login_required(view: F) -> F:
    """Send anonymous visitors to the login page (with a safe ``next``)."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.get("user") is None:
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def roles_required(*roles: str) -> Callable[[F], F]:
    """Allow only users holding one of ``roles`` (any unit); others get 403."""

    def decorate(view: F) -> F:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not g.actor.role_names & set(roles):
                abort(403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorate


def safe_next(target: str | None) -> str:
    """A same-site path to go to after login; anything else becomes the start page."""
    if not target:
        return url_for("main.index")
    target = target.replace("\\", "/")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("main.index")
    return target


def add_security_headers(response: Response) -> Response:
    """Headers for every response: CSP without inline script, no caching of case data."""
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
    return response


def refuse_nul_bytes() -> Response | None:
    """A NUL byte has no place in a path, query or form; databases choke on it (400)."""
    values = [request.path, *request.args.values()]
    if request.method == "POST" and request.mimetype != "application/json":
        values.extend(request.form.values())
    if any("\x00" in v for v in values):
        abort(400)
    return None


def init_security(app: Flask) -> None:
    """Register the per-request hooks."""
    app.before_request(refuse_nul_bytes)
    app.after_request(add_security_headers)
