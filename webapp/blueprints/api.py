"""JSON API v1: the browser's actions for integrations and automation.

Callers authenticate with a bearer token (``webapp.tokens``: one algorithm, ``exp``/``iss``/
``aud`` required) or with the browser session; a session caller must send the CSRF token in
an ``X-CSRFToken`` header on every state-changing request. Access goes through
``engine.access`` exactly as in the browser, so another unit's case, task or decision is a 404.
Every error is JSON (``webapp.errors``): ``{"error", "message"}``, plus ``field_errors`` on
422 and ``completed_by`` on 409. Only keys a form declares reach task data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request, session, url_for
from flask_wtf.csrf import CSRFError, generate_csrf
from sqlalchemy import select

from engine import access, actions, audit, queries
from engine.audit import Actor
from engine.db import utcnow
from engine.errors import Conflict, Forbidden, LotsenError, NotFound, ValidationFailed
from engine.login import FRESH_AUTH_SECONDS, token_revoked
from engine.models import Document, Unit, User
from engine.processes import declared_keys, model_for, published_procedures
from engine.queries import CaseView, DecisionView, TaskView
from engine.roles import INTAKE_ROLES
from forms.builder import validate_data
from forms.spec import FormSpec, load_form_spec
from webapp import services
from webapp.errors import TITLES
from webapp.extensions import csrf
from webapp.openapi import build_openapi
from webapp.security import DOWNLOAD_CSP, actor_for
from webapp.tokens import verify_token

bp = Blueprint("api", __name__, url_prefix="/api/v1")
# Bearer requests carry no cookies, so no CSRF token; session callers are checked in
# ``authenticate`` below (the global CSRFProtect would only look at form fields first).
csrf.exempt(bp)

#: endpoints without a user login (other modules may add theirs, e.g. token-scoped intake)
PUBLIC_ENDPOINTS = {"api.openapi"}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_DB_ID = 2**31 - 1  # ids beyond a 32-bit integer cannot exist (and would make the DB raise)
TASK_ID_RE = re.compile(r"[A-Za-z0-9-]{1,36}")
MAX_TOKEN_LENGTH = 4096
#: Calls that need a recent login (security.md §1 row 10): see ``_require_fresh_auth``.
FRESH_AUTH_ENDPOINTS = {"api.approve_decision", "api.return_decision"}
MAX_COMMENT_LENGTH = 5000


class BadRequest(LotsenError):
    """The request body is not a JSON object."""

    status = 400


# --- authentication ----------------------------------------------------------------------------


@bp.before_request
def authenticate() -> Response | None:
    """Set ``g.user``/``g.actor`` from a bearer token, or check the session caller's CSRF."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    header = request.headers.get("Authorization")
    if header is not None:
        refusal = _authenticate_bearer(header)
        return refusal if refusal is not None else _require_fresh_auth()
    if g.get("user") is None:
        return _unauthorized("Authentication required: send a bearer token.")
    g.api_auth = "session"
    if request.method not in SAFE_METHODS:
        _check_origin()
        csrf.protect()  # the X-CSRFToken header; a CSRFError becomes a 400 (webapp.errors)
    return _require_fresh_auth()


def _authenticate_bearer(header: str) -> Response | None:
    scheme, _, token = header.partition(" ")
    token = token.strip()
    # A bearer header always wins over (and never falls back to) a session cookie.
    g.user = None
    g.actor = Actor(user_id=None, username="anonymous", source_ip=request.remote_addr)
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        return _reject_token("malformed authorization header")
    try:
        claims = verify_token(current_app.extensions["lotsen"], token)
    except Exception:  # AuthenticationFailed, or anything a hostile token provokes: fail closed
        return _reject_token("invalid token")
    if claims.scope != "api":
        return _reject_token("wrong scope")
    user = g.db.execute(select(User).where(User.username == claims.username)).scalar_one_or_none()
    if user is None or not user.active:
        return _reject_token("unknown or inactive user")
    if token_revoked(g.db, jti=claims.jti, issued_at=claims.issued_at, user=user):
        return _reject_token("revoked token")
    g.user = user
    g.actor = actor_for(user, request.remote_addr)
    g.api_auth = "bearer"
    g.api_auth_time = claims.auth_time
    return None


def _require_fresh_auth() -> Response | None:
    """Approving or returning a decision needs authentication within the last five minutes.

    A bearer token's ``auth_time`` (set when it was issued), or the browser session's
    ``auth_at``; otherwise 401 with an RFC 9470 step-up challenge and nothing is stored.
    """
    if request.endpoint not in FRESH_AUTH_ENDPOINTS:
        return None
    if g.api_auth == "bearer":
        auth_time = g.get("api_auth_time")
    else:
        raw = session.get("auth_at")
        auth_time = raw if isinstance(raw, int | float) else None
    age = None if auth_time is None else utcnow().timestamp() - float(auth_time)
    if age is not None and -60 <= age <= FRESH_AUTH_SECONDS:
        return None
    audit.record(
        g.db,
        g.actor,
        "auth:reauth_required",
        outcome="denied",
        details={"path": request.path, "method": request.method, "via": g.api_auth},
    )
    minutes = FRESH_AUTH_SECONDS // 60
    message = (
        f"Fresh authentication required: approving or returning a decision needs a token "
        f"issued within the last {minutes} minutes (or, with the browser session, a password "
        f"entered within the last {minutes} minutes at /reauth)."
    )
    response = _unauthorized(message)
    response.headers["WWW-Authenticate"] = (
        'Bearer realm="lotsen", error="insufficient_user_authentication", '
        f'error_description="authentication too old", max_age={FRESH_AUTH_SECONDS}'
    )
    return response


def _reject_token(reason: str) -> Response:
    """401, and an audit entry; the token itself is never logged."""
    audit.record(
        g.db,
        g.actor,
        "auth:token_rejected",
        outcome="denied",
        details={"path": request.path, "method": request.method, "reason": reason},
    )
    return _unauthorized("The token is invalid or has expired.")


def _unauthorized(message: str) -> Response:
    response = jsonify({"error": TITLES[401], "message": message})
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="lotsen"'
    return response


def _check_origin() -> None:
    """A session POST from another origin is refused even before the CSRF token is checked."""
    origin = request.headers.get("Origin")
    if origin is not None and origin.rstrip("/") != request.host_url.rstrip("/"):
        raise CSRFError("The request did not come from Lotsen.")


# --- request parsing ---------------------------------------------------------------------------


def _json_body(*, optional: bool = False) -> dict[str, Any]:
    """The body as a JSON object; 400 for anything else (an empty body is ``{}`` if optional)."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if optional:
            return {}
        raise BadRequest("A JSON object is required as the request body.")
    if not request.is_json:
        raise BadRequest("Send the body as application/json.")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadRequest("The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


def _db_id(value: int, kind: str) -> int:
    if not 1 <= value <= MAX_DB_ID:
        raise NotFound(f"{kind} not found")
    return value


def _task_id(value: str) -> str:
    if not TASK_ID_RE.fullmatch(value):
        raise NotFound("task not found")
    return value


def _comment(body: Mapping[str, Any]) -> str | None:
    comment = body.get("comment")
    if comment is None:
        return None
    if not isinstance(comment, str):
        raise ValidationFailed({"comment": ["Expected a string."]})
    if len(comment) > MAX_COMMENT_LENGTH:
        raise ValidationFailed({"comment": [f"At most {MAX_COMMENT_LENGTH} characters."]})
    return comment


def _validated(spec: FormSpec | None, data: Mapping[str, Any]) -> dict[str, Any]:
    """Task data for the spec's declared keys, validated as the HTML form is; else 422."""
    if spec is None:
        return {}
    clean, errors = validate_data(spec, data, g.get("lang", "sv"))
    if errors:
        raise ValidationFailed(errors)
    return clean


# --- JSON shapes (webapp/openapi.py documents them) --------------------------------------------


def _ts(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _unit_keys() -> dict[int, str]:
    if "api_unit_keys" not in g:
        g.api_unit_keys = {uid: key for uid, key in g.db.execute(select(Unit.id, Unit.key))}
    return g.api_unit_keys  # type: ignore[no-any-return]


def _task_json(view: TaskView) -> dict[str, Any]:
    return {
        "id": view.id,
        "case_id": view.case_id,
        "case_number": view.case_number,
        "procedure": view.procedure,
        "bpmn_id": view.bpmn_id,
        "name": view.name,
        "role": view.role,
        "status": view.status,
        "due_at": _ts(view.due_at),
        "overdue": view.overdue,
        "version": view.version,
        "assignee_id": view.assignee_id,
        "decision_id": view.decision_id,
        "is_approval": view.is_approval,
    }


def _decision_summary(view: DecisionView) -> dict[str, Any]:
    return {
        "id": view.id,
        "type": view.decision_type,
        "outcome": view.outcome,
        "status": view.status,
        "proposed_at": _ts(view.proposed_at),
        "decided_at": _ts(view.decided_at),
        "document_available": view.document_id is not None,
    }


def _decision_json(view: DecisionView) -> dict[str, Any]:
    return {
        **_decision_summary(view),
        "case_id": view.case_id,
        "case_number": view.case_number,
        "detail": view.detail,
        "reasons": view.reasons,
        "legal_refs": list(view.legal_refs),
        "appealable": view.appealable,
        "proposed_by": view.proposed_by,
        "decided_by": view.decided_by,
        "comment": view.comment,
        "document_id": view.document_id,
    }


def _case_json(view: CaseView) -> dict[str, Any]:
    return {
        "id": view.id,
        "number": view.number,
        "procedure": view.procedure,
        "procedure_name": view.procedure_name,
        "unit": _unit_keys().get(view.unit_id, ""),
        "unit_name": view.unit_name,
        "status": view.status,
        "protected": view.protected,
        "created_at": _ts(view.created_at),
        "received_at": _ts(view.received_at),
        "open_tasks": [_task_json(t) for t in view.open_tasks],
        "decisions": [_decision_summary(d) for d in view.decisions],
    }


def _startable_units(actor: Actor) -> dict[str, int]:
    """{unit key: id} of the units where the actor may register a case."""
    return {
        key: unit_id
        for unit_id, key in sorted(_unit_keys().items())
        if any(actor.has_role(role, unit_id) for role in INTAKE_ROLES)
    }


# --- endpoints ---------------------------------------------------------------------------------


@bp.get("/openapi.json")
def openapi() -> Any:
    """The OpenAPI 3.1 document (public: shapes only, no personal data)."""
    return jsonify(build_openapi(session_cookie=current_app.config["SESSION_COOKIE_NAME"]))


@bp.get("/me")
def me() -> Any:
    """The caller, their roles (with unit keys) and how they authenticated."""
    units = _unit_keys()
    body: dict[str, Any] = {
        "username": g.user.username,
        "display_name": g.user.display_name,
        "roles": [
            {"role": role, "unit": units.get(unit_id) if unit_id is not None else None}
            for role, unit_id in sorted(g.actor.roles, key=lambda r: (r[0], r[1] or 0))
        ],
        "auth": g.api_auth,
    }
    if g.api_auth == "session":
        body["csrf_token"] = generate_csrf()
    return jsonify(body)


@bp.get("/processes")
def processes() -> Any:
    """Published procedures with their start forms, and where the caller may start them."""
    startable = sorted(_startable_units(g.actor))
    items = []
    for version in published_procedures(g.db):
        model = model_for(version)
        key = model.start_form_key
        items.append(
            {
                "id": version.process_id,
                "name": version.name,
                "version": version.number,
                "start_form_key": key,
                "start_form": version.forms.get(key) if key else None,
                "can_start_in": startable,
            }
        )
    return jsonify({"processes": items})


@bp.post("/cases")
def create_case() -> Any:
    """Register a case in a unit and start its procedure with validated intake data."""
    body = _json_body()
    procedure = body.get("procedure")
    if not isinstance(procedure, str) or not procedure:
        raise ValidationFailed({"procedure": ["A procedure id is required."]})
    version = next((v for v in published_procedures(g.db) if v.process_id == procedure), None)
    if version is None:
        raise ValidationFailed({"procedure": ["Unknown procedure."]})
    unit_id = _unit_for_new_case(body.get("unit"))
    data = body.get("data")
    if not isinstance(data, dict):
        raise ValidationFailed({"data": ["Expected a JSON object with the intake form's data."]})
    key = model_for(version).start_form_key
    spec = load_form_spec(version.forms[key]) if key and key in version.forms else None
    clean = _validated(spec, data)
    case = actions.start_case(
        g.db,
        g.actor,
        procedure=procedure,
        unit_id=unit_id,
        intake=clean,
        subject_fields=spec.subject_fields if spec else {},
    )
    response = jsonify(_case_json(queries.case_view(g.db, case)))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_case", case_id=case.id)
    return response


def _unit_for_new_case(raw: Any) -> int:
    startable = _startable_units(g.actor)
    if raw is None:
        if len(startable) == 1:
            return next(iter(startable.values()))
        if not startable:
            raise Forbidden("only caseworkers may register a case")
        raise ValidationFailed({"unit": ["Name the unit: you are caseworker in several."]})
    if not isinstance(raw, str) or raw not in set(_unit_keys().values()):
        raise ValidationFailed({"unit": ["Unknown unit."]})
    if raw not in startable:
        raise Forbidden("only caseworkers of the unit may register a case")
    return startable[raw]


@bp.get("/cases/<int:case_id>")
def get_case(case_id: int) -> Any:
    """A case the caller may see, with its open tasks and decisions."""
    case = access.access_case(g.db, g.actor, _db_id(case_id, "case"), purpose="api")
    return jsonify(_case_json(queries.case_view(g.db, case)))


@bp.get("/tasks")
def list_tasks() -> Any:
    """The caller's inbox: their own tasks and the unclaimed tasks of their roles."""
    tasks = queries.inbox(g.db, g.actor)
    audit.record(g.db, g.actor, "inbox:listed", purpose="api", details={"count": len(tasks)})
    return jsonify({"tasks": [_task_json(t) for t in tasks]})


@bp.get("/tasks/<task_id>")
def get_task(task_id: str) -> Any:
    """A task with its form spec and the current values of the form's keys."""
    task = access.access_task(g.db, g.actor, _task_id(task_id), purpose="api")
    context = queries.task_form_context(g.db, task)
    spec = context["spec"] or None
    values = context["data"]
    body = _task_json(queries.task_view(g.db, task))
    body["form_key"] = task.form_key
    body["form"] = spec
    body["data"] = {k: values[k] for k in declared_keys(spec or {}) if k in values}
    return jsonify(body)


@bp.post("/tasks/<task_id>/claim")
def claim_task(task_id: str) -> Any:
    """Take a task from the shared queue of the caller's role."""
    task = actions.claim_task(g.db, g.actor, task_id=_task_id(task_id))
    return jsonify(_task_json(queries.task_view(g.db, task)))


@bp.post("/tasks/<task_id>/complete")
def complete_task(task_id: str) -> Any:
    """Complete a task: ``{"data": {...}, "version": n}``; 422 field errors, 409 conflicts."""
    body = _json_body()
    task = access.access_task(g.db, g.actor, _task_id(task_id), purpose="api")
    data, version = body.get("data"), body.get("version")
    shape_errors: dict[str, list[str]] = {}
    if not isinstance(data, dict):
        shape_errors["data"] = ["Expected a JSON object with the form's data."]
    if not isinstance(version, int) or isinstance(version, bool):
        shape_errors["version"] = ["Expected the task's version (an integer)."]
    if shape_errors:
        raise ValidationFailed(shape_errors)
    assert isinstance(data, dict) and isinstance(version, int)
    if task.status != "open":
        # The engine says who finished it first (a 409 with completed_by).
        actions.complete_task(g.db, g.actor, task_id=task.id, data={})
        raise Conflict("the task is no longer open", case_id=task.case_id)
    context = queries.task_form_context(g.db, task)
    meta = context["meta"]
    if meta is not None and meta.approves_decision:
        raise Forbidden("an approval task is completed by approving or returning its decision")
    if context["instance"].version != version:
        raise Conflict("the case has changed since the task was read", case_id=task.case_id)
    spec = load_form_spec(context["spec"]) if context["spec"] else None
    clean = _validated(spec, data)
    result = actions.complete_task(
        g.db, g.actor, task_id=task.id, data=clean, expected_version=version
    )
    return jsonify(
        {
            "case_id": result.case_id,
            "next_task_id": result.next_task_id,
            "decision_id": result.decision_id,
        }
    )


@bp.get("/decisions/<int:decision_id>")
def get_decision(decision_id: int) -> Any:
    """A decision whose case the caller may see."""
    decision = access.access_decision(g.db, g.actor, _db_id(decision_id, "decision"))
    return jsonify(_decision_json(queries.decision_view(g.db, decision)))


@bp.post("/decisions/<int:decision_id>/approve")
def approve_decision(decision_id: int) -> Any:
    """Approve a proposed decision (four eyes); its PDF is filed in the case."""
    comment = _comment(_json_body(optional=True))
    decision = services.decide_with_document(
        g.db, g.actor, _db_id(decision_id, "decision"), approve=True, comment=comment
    )
    return jsonify(_decision_json(queries.decision_view(g.db, decision)))


@bp.post("/decisions/<int:decision_id>/return")
def return_decision(decision_id: int) -> Any:
    """Return a proposed decision to its proposer; ``comment`` is required."""
    comment = _comment(_json_body(optional=True))
    decision = services.decide_with_document(
        g.db, g.actor, _db_id(decision_id, "decision"), approve=False, comment=comment
    )
    return jsonify(_decision_json(queries.decision_view(g.db, decision)))


@bp.get("/decisions/<int:decision_id>/pdf")
def decision_pdf(decision_id: int) -> Any:
    """The filed PDF of a decision, as an attachment; every download is audited."""
    decision = access.access_decision(g.db, g.actor, _db_id(decision_id, "decision"))
    view = queries.decision_view(g.db, decision)
    document = g.db.get(Document, view.document_id) if view.document_id is not None else None
    if document is None:
        raise NotFound("the decision has no document yet")
    if not document.released:  # held for the unit manager's approval (protected identity)
        raise Forbidden("the document is waiting for the unit manager's approval")
    services.record_download(g.db, g.actor, decision.case_id, document.id)
    filename = re.sub(r"[^A-Za-z0-9._-]", "_", document.filename) or "beslut.pdf"
    response = Response(document.content, mimetype=document.media_type or "application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Content-Security-Policy"] = DOWNLOAD_CSP
    return response
