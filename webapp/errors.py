"""Engine refusals and HTTP errors become clear pages (or JSON under /api/), never a traceback."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from flask import Flask, g, jsonify, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from engine import audit
from engine.errors import Conflict, LotsenError, ValidationFailed
from engine.workflow.problems import TaskNotReady
from webapp.outage import database_unavailable, unavailable_response

log = logging.getLogger("lotsen")

TITLES = {
    400: "Bad request",
    401: "Please log in",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    422: "Invalid data",
    429: "Too many requests",
    500: "Something went wrong",
    503: "Service unavailable",
}
#: The same titles for pages, translated (the JSON API keeps the English ones).
PAGE_TITLES = {
    400: _l("Bad request"),
    401: _l("Please log in"),
    403: _l("Not allowed"),
    404: _l("Not found"),
    405: _l("Method not allowed"),
    409: _l("Conflict"),
    413: _l("Too large"),
    422: _l("Invalid data"),
    429: _l("Too many requests"),
    500: _l("Something went wrong"),
    503: _l("Service unavailable"),
}


def wants_json() -> bool:
    """API paths answer in JSON."""
    return request.path.startswith("/api/")


def _record_refusal(
    action: str, outcome: str, details: dict[str, Any], exc: Exception | None = None
) -> None:
    """Roll back the failed work, then keep an audit entry of the refusal.

    A refused read names what was refused (kind, id, case), so the log review sees which
    case somebody tried to open.
    """
    db = g.get("db")
    if db is None:
        return
    db.rollback()
    extra = getattr(exc, "details", {}) or {}
    kind = extra.get("denied_kind")
    try:
        if kind:
            audit.record(
                db,
                g.actor,
                f"{kind}:denied",
                outcome="denied",
                case_id=extra.get("denied_case_id"),
                object_type=str(kind),
                object_id=extra.get("denied_id"),
                details=details,
            )
        else:
            audit.record(db, g.actor, action, outcome=outcome, details=details)
    except Exception:  # the refusal page matters more than its log entry
        log.exception("could not audit a refusal")
        db.rollback()


def _page(status: int, message: str, **extra: Any) -> tuple[Any, int]:
    if wants_json():
        body = {"error": TITLES.get(status, "Error"), "message": message, **extra}
        return jsonify(body), status
    return render_template(
        "error.html",
        status=status,
        title=str(PAGE_TITLES.get(status, _l("Error"))),
        message=message,
        **extra,
    ), status


def register_error_handlers(app: Flask) -> None:
    """Map every error class to a status and a page."""

    @app.errorhandler(LotsenError)
    def lotsen_error(exc: LotsenError) -> Any:
        outcome = "denied" if exc.status in (403, 404) else "refused"
        _record_refusal(
            "request:denied" if outcome == "denied" else "request:refused",
            outcome,
            {
                "path": request.path,
                "method": request.method,
                "error": type(exc).__name__,
                "status": exc.status,
            },
            exc,
        )
        if isinstance(exc, ValidationFailed):
            return _page(422, exc.message, field_errors=exc.field_errors)
        if isinstance(exc, Conflict):
            details = {k: v for k, v in exc.details.items() if v is not None}
            if wants_json():
                return _page(409, exc.message, **details)
            return render_template("conflict.html", message=exc.message, **details), 409
        messages = {
            403: _("You are not allowed to do this."),
            404: _("The page or item was not found."),
        }
        return _page(exc.status, messages.get(exc.status, exc.message))

    @app.errorhandler(TaskNotReady)
    def task_not_ready(exc: TaskNotReady) -> Any:
        # A step completed by a concurrent request between this request's first read and its
        # read of the engine state (PostgreSQL, READ COMMITTED): a conflict, never a 500.
        _record_refusal(
            "request:refused",
            "refused",
            {"path": request.path, "method": request.method, "error": "TaskNotReady"},
        )
        return _page(
            409,
            _(
                "This step was completed or changed by someone else a moment ago. "
                "Open the case to see where it stands now."
            ),
        )

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> Any:
        _record_refusal("request:csrf_failed", "denied", {"path": request.path})
        return _page(
            400,
            _("The form has expired or did not come from Lotsen. Reload the page and try again."),
        )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        if status == 500 and database_unavailable(getattr(exc, "original_exception", None)):
            return unavailable_response(exc.original_exception)  # type: ignore[attr-defined]
        if status in (403,):
            _record_refusal("request:denied", "denied", {"path": request.path, "status": status})
        messages = {
            404: _("The page or item was not found."),
            403: _("You are not allowed to do this."),
            405: _("This action is not available here."),
            413: _("What you sent is too large."),
        }
        return _page(status, messages.get(status, exc.description or ""))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        if database_unavailable(exc):
            return unavailable_response(exc)
        error_id = secrets.token_hex(6)
        log.error(
            "unhandled error %s on %s %s", error_id, request.method, request.path, exc_info=exc
        )
        db = g.get("db")
        if db is not None:
            db.rollback()
        g.rollback_only = True
        return _page(
            500,
            _(
                "An unexpected error occurred. Please try again; if it happens again, "
                "give the error id below to support."
            ),
            error_id=error_id,
        )
