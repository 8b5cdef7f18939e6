"""A database that cannot be reached is a 503, never a 500 (security.md REL-8, §6 case 29).

Used by :mod:`webapp.errors`. A dropped or refused connection (a PostgreSQL restart, a network
cut, an exhausted pool) gives a page (or JSON under /api/) with an error id and a Retry-After
header; a form post gets its typed values back as the hidden fields of a "Send again" form, so
nothing the user typed is lost while the database is away (passwords and codes excepted). The
engine's pool pings connections before use (engine/db.py), so the first request after the
database is back works without restarting the app.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from flask import g, jsonify, render_template, request
from flask_babel import gettext as _

log = logging.getLogger("lotsen")


#: Form fields never written back into a page (secrets the user typed).
_NOT_KEPT = frozenset({"password", "new_password", "current_password", "code", "totp"})


def database_unavailable(exc: BaseException | None) -> bool:
    """True when ``exc`` (or what it wraps) means the database cannot be reached right now:
    a refused or dropped connection, a server restart, a pool timeout (security.md REL-8)."""
    from sqlalchemy.exc import DBAPIError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, OperationalError | PoolTimeout):
            return True
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return True
        exc = getattr(exc, "original_exception", None) or exc.__cause__
        seen += 1
    return False


def unavailable_response(exc: BaseException) -> Any:
    """503 with an error id; a form post gets its typed values back to send again."""
    from flask import globals as flask_globals

    from webapp.errors import PAGE_TITLES, TITLES, wants_json

    error_id = secrets.token_hex(6)
    # the class only: the message of a database error may quote SQL parameters
    log.warning(
        "database unavailable %s on %s %s (%s)",
        error_id,
        request.method,
        request.path,
        type(exc).__name__,
    )
    db = g.get("db")
    if db is not None:
        try:
            db.rollback()
        except Exception:  # the connection is gone; nothing to roll back
            log.debug("rollback after an outage failed", exc_info=True)
    g.rollback_only = True
    ctx = flask_globals.request_ctx
    if ctx and getattr(ctx, "_session", False) is None:
        # the outage hit while the session was being opened: an empty one lets the page render
        from webapp.sessions import DbSession

        ctx._session = DbSession()
    message = _(
        "Lotsen cannot reach its database at the moment. Nothing was saved. Please try "
        "again in a minute."
    )
    if wants_json():
        body = {"error": TITLES[503], "message": message, "error_id": error_id, "retry": True}
        response = jsonify(body)
        response.status_code = 503
    else:
        kept = []
        if request.method == "POST" and request.mimetype in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            kept = [(k, v) for k, v in request.form.items(multi=True) if k not in _NOT_KEPT]
        response = app_response(
            render_template(
                "errors/unavailable.html",
                title=str(PAGE_TITLES[503]),
                message=message,
                error_id=error_id,
                kept=kept,
                retry_url=request.path,
            ),
            503,
        )
    response.headers["Retry-After"] = "30"
    return response


def app_response(body: str, status: int) -> Any:
    """A response object (so headers can be added) from a rendered page."""
    from flask import make_response

    return make_response(body, status)
