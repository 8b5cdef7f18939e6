"""The OpenAPI 3.1 document of the JSON API v1, built as plain data.

It is public (``GET /api/v1/openapi.json``) and holds no personal data: only shapes. The
tests check every response they receive against it, so a field added to a response without
being documented here fails the suite.
"""

from __future__ import annotations

import copy
from typing import Any

API_VERSION = "1.0.0"
PREFIX = "/api/v1"

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    """``schema`` or null (OpenAPI 3.1 / JSON Schema 2020-12 style)."""
    if "type" in schema and isinstance(schema["type"], str):
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _object(
    properties: dict[str, Schema], required: list[str] | None = None, **extra: Any
) -> Schema:
    """An object schema; every property is required unless ``required`` says otherwise."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        **extra,
    }


STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
DATETIME: Schema = {"type": "string", "format": "date-time"}
DECISION_STATUS: Schema = {"type": "string", "enum": ["proposed", "approved", "returned"]}
TASK_STATUS: Schema = {"type": "string", "enum": ["open", "done", "cancelled"]}
FREE_OBJECT: Schema = {"type": "object", "additionalProperties": True}

_TASK_PROPERTIES: dict[str, Schema] = {
    "id": {**STRING, "description": "Task id (opaque)."},
    "case_id": INTEGER,
    "case_number": STRING,
    "procedure": STRING,
    "bpmn_id": {**STRING, "description": "The task's id in the process model."},
    "name": STRING,
    "role": _nullable({**STRING, "description": "The role (BPMN lane) that works the task."}),
    "status": TASK_STATUS,
    "due_at": _nullable(DATETIME),
    "overdue": BOOLEAN,
    "version": {
        **INTEGER,
        "description": "The case's workflow version; send it back when completing the task.",
    },
    "assignee_id": _nullable(INTEGER),
    "decision_id": _nullable({**INTEGER, "description": "The decision an approval task is for."}),
    "is_approval": BOOLEAN,
}

_DECISION_SUMMARY: dict[str, Schema] = {
    "id": INTEGER,
    "type": {**STRING, "description": "Decision type code, e.g. D-A6."},
    "outcome": STRING,
    "status": DECISION_STATUS,
    "proposed_at": DATETIME,
    "decided_at": _nullable(DATETIME),
    "document_available": BOOLEAN,
}

SCHEMAS: dict[str, Schema] = {
    "Error": _object(
        {
            "error": {**STRING, "description": "Short, stable title of the HTTP status."},
            "message": STRING,
            "error_id": STRING,
        },
        required=["error", "message"],
    ),
    "ConflictError": _object(
        {
            "error": STRING,
            "message": STRING,
            "case_id": INTEGER,
            "completed_by": {**STRING, "description": "Who finished the task first."},
            "completed_at": DATETIME,
        },
        required=["error", "message"],
    ),
    "ValidationError": _object(
        {
            "error": STRING,
            "message": STRING,
            "field_errors": {
                "type": "object",
                "description": "Messages by field key ('' for the body as a whole).",
                "additionalProperties": {"type": "array", "items": STRING},
            },
        }
    ),
    "FormSpec": {
        "type": "object",
        "description": "A form spec (close to the form-js schema): id, title, components.",
        "properties": {
            "id": STRING,
            "title": {"anyOf": [STRING, FREE_OBJECT]},
            "components": {"type": "array", "items": FREE_OBJECT},
        },
        "required": ["components"],
        "additionalProperties": True,
    },
    "Role": _object({"role": STRING, "unit": _nullable({**STRING, "description": "Unit key."})}),
    "Me": _object(
        {
            "username": STRING,
            "display_name": STRING,
            "roles": {"type": "array", "items": _ref("Role")},
            "auth": {"type": "string", "enum": ["bearer", "session"]},
            "csrf_token": {
                **STRING,
                "description": "Session callers only: send it as X-CSRFToken on POST.",
            },
        },
        required=["username", "display_name", "roles", "auth"],
    ),
    "Process": _object(
        {
            "id": STRING,
            "name": STRING,
            "version": INTEGER,
            "start_form_key": _nullable(STRING),
            "start_form": _nullable(_ref("FormSpec")),
            "can_start_in": {
                "type": "array",
                "items": STRING,
                "description": "Unit keys where the caller may register a case.",
            },
        }
    ),
    "ProcessList": _object({"processes": {"type": "array", "items": _ref("Process")}}),
    "Task": _object(_TASK_PROPERTIES),
    "TaskDetail": _object(
        {
            **_TASK_PROPERTIES,
            "form_key": _nullable(STRING),
            "form": _nullable(_ref("FormSpec")),
            "data": {
                **FREE_OBJECT,
                "description": "Current values of the form's declared keys (open tasks only).",
            },
        }
    ),
    "TaskList": _object({"tasks": {"type": "array", "items": _ref("Task")}}),
    "DecisionSummary": _object(_DECISION_SUMMARY),
    "Decision": _object(
        {
            **_DECISION_SUMMARY,
            "case_id": INTEGER,
            "case_number": STRING,
            "detail": _nullable(STRING),
            "reasons": STRING,
            "legal_refs": {"type": "array", "items": STRING},
            "appealable": BOOLEAN,
            "proposed_by": STRING,
            "decided_by": _nullable(STRING),
            "comment": _nullable(STRING),
            "document_id": _nullable(INTEGER),
        }
    ),
    "Case": _object(
        {
            "id": INTEGER,
            "number": STRING,
            "procedure": STRING,
            "procedure_name": STRING,
            "unit": {**STRING, "description": "Unit key."},
            "unit_name": STRING,
            "status": STRING,
            "protected": BOOLEAN,
            "created_at": DATETIME,
            "received_at": DATETIME,
            "open_tasks": {"type": "array", "items": _ref("Task")},
            "decisions": {"type": "array", "items": _ref("DecisionSummary")},
        }
    ),
    "Completion": _object(
        {
            "case_id": INTEGER,
            "next_task_id": _nullable(
                {
                    **STRING,
                    "description": "The caller's next task in the case, if any.",
                }
            ),
            "decision_id": _nullable({**INTEGER, "description": "A decision this proposed."}),
        }
    ),
    "CaseCreate": _object(
        {
            "procedure": {**STRING, "description": "Process id, e.g. identification."},
            "unit": {
                **STRING,
                "description": "Unit key; optional when the caller is caseworker in one unit.",
            },
            "data": {**FREE_OBJECT, "description": "Intake data for the start form's keys."},
        },
        required=["procedure", "data"],
    ),
    "TaskCompletion": _object(
        {
            "data": {**FREE_OBJECT, "description": "Values for the form's declared keys."},
            "version": {**INTEGER, "description": "The task's `version` as last read."},
        }
    ),
    "DecisionApproval": _object({"comment": _nullable({**STRING, "maxLength": 5000})}, required=[]),
    "DecisionReturn": _object({"comment": {**STRING, "minLength": 1, "maxLength": 5000}}),
}

_ERRORS: dict[str, tuple[str, str]] = {
    "400": (
        "BadRequest",
        "The body is not a JSON object, a CSRF check failed, or the path or query holds a "
        "NUL byte.",
    ),
    "401": ("Unauthorized", "No valid bearer token or session."),
    "403": ("Forbidden", "Authenticated, but not allowed to do this."),
    "404": ("NotFound", "Missing, or not visible to the caller (the same answer)."),
    "409": ("Conflict", "Somebody else changed the case first, or the task is done."),
    "422": ("Unprocessable", "Field errors in the submitted data."),
}

RESPONSES: dict[str, Schema] = {
    name: {
        "description": text,
        "content": {
            "application/json": {
                "schema": _ref(
                    {"409": "ConflictError", "422": "ValidationError"}.get(status, "Error")
                )
            }
        },
    }
    for status, (name, text) in _ERRORS.items()
}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: str) -> dict[str, Schema]:
    return {s: {"$ref": f"#/components/responses/{_ERRORS[s][0]}"} for s in statuses}


def _op(
    op_id: str,
    summary: str,
    ok: tuple[str, Schema],
    errors: tuple[str, ...],
    *,
    body: str | None = None,
    body_required: bool = True,
    params: list[Schema] | None = None,
    security: list[Any] | None = None,
    tag: str = "api",
) -> Schema:
    status, response = ok
    op: Schema = {
        "operationId": op_id,
        "summary": summary,
        "tags": [tag],
        "responses": {status: response, **_errors("401", *errors)},
    }
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    if security is not None:
        op["security"] = security
        op["responses"].pop("401", None)
    return op


def _path_param(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


CASE_ID = _path_param("case_id", {**INTEGER, "minimum": 1}, "Case id.")
TASK_ID = _path_param("task_id", {**STRING, "maxLength": 36}, "Task id.")
DECISION_ID = _path_param("decision_id", {**INTEGER, "minimum": 1}, "Decision id.")

_WRITE = ("400",)  # POST bodies are parsed (400) and session callers pass CSRF (400)


def _paths() -> dict[str, Schema]:
    return {
        "/openapi.json": {
            "get": _op(
                "getOpenApi",
                "This document.",
                ("200", _json(FREE_OBJECT, "OpenAPI 3.1")),
                (),
                security=[],
                tag="meta",
            ),
        },
        "/me": {
            "get": _op("getMe", "Who the caller is.", ("200", _json(_ref("Me"), "The caller")), ()),
        },
        "/processes": {
            "get": _op(
                "listProcesses",
                "Published procedures and their start forms.",
                ("200", _json(_ref("ProcessList"), "Procedures")),
                (),
            ),
        },
        "/cases": {
            "post": _op(
                "createCase",
                "Register a case and start its procedure.",
                (
                    "201",
                    {
                        **_json(_ref("Case"), "The new case"),
                        "headers": {
                            "Location": {"schema": STRING, "description": "URL of the new case."}
                        },
                    },
                ),
                (*_WRITE, "403", "422"),
                body="CaseCreate",
            ),
        },
        "/cases/{case_id}": {
            "get": _op(
                "getCase",
                "A case with its open tasks and decisions.",
                ("200", _json(_ref("Case"), "The case")),
                ("404",),
                params=[CASE_ID],
            ),
        },
        "/tasks": {
            "get": _op(
                "listTasks",
                "The caller's inbox: own and unclaimed tasks of their roles.",
                ("200", _json(_ref("TaskList"), "Open tasks, soonest due first")),
                (),
            ),
        },
        "/tasks/{task_id}": {
            "get": _op(
                "getTask",
                "A task with its form spec.",
                ("200", _json(_ref("TaskDetail"), "The task")),
                ("404",),
                params=[TASK_ID],
            ),
        },
        "/tasks/{task_id}/claim": {
            "post": _op(
                "claimTask",
                "Take a task from the shared queue.",
                ("200", _json(_ref("Task"), "The claimed task")),
                (*_WRITE, "404", "409"),
                params=[TASK_ID],
            ),
        },
        "/tasks/{task_id}/complete": {
            "post": _op(
                "completeTask",
                "Complete a task with form data; the procedure moves on.",
                ("200", _json(_ref("Completion"), "What happened next")),
                (*_WRITE, "403", "404", "409", "422"),
                body="TaskCompletion",
                params=[TASK_ID],
            ),
        },
        "/decisions/{decision_id}": {
            "get": _op(
                "getDecision",
                "A decision record.",
                ("200", _json(_ref("Decision"), "The decision")),
                ("404",),
                params=[DECISION_ID],
            ),
        },
        "/decisions/{decision_id}/approve": {
            "post": _op(
                "approveDecision",
                "Approve a proposed decision (four eyes); files its PDF.",
                ("200", _json(_ref("Decision"), "The approved decision")),
                (*_WRITE, "403", "404", "409", "422"),
                body="DecisionApproval",
                body_required=False,
                params=[DECISION_ID],
            ),
        },
        "/decisions/{decision_id}/return": {
            "post": _op(
                "returnDecision",
                "Return a proposed decision to its proposer, with a comment.",
                ("200", _json(_ref("Decision"), "The returned decision")),
                (*_WRITE, "403", "404", "409", "422"),
                body="DecisionReturn",
                params=[DECISION_ID],
            ),
        },
        "/decisions/{decision_id}/pdf": {
            "get": _op(
                "getDecisionPdf",
                "The stored PDF of an approved decision (a logged download).",
                (
                    "200",
                    {
                        "description": "The PDF, as an attachment",
                        "content": {
                            "application/pdf": {"schema": {"type": "string", "format": "binary"}}
                        },
                    },
                ),
                ("403", "404"),
                params=[DECISION_ID],
            ),
        },
    }


def _document_text_refusals(paths: dict[str, Schema]) -> None:
    """Any request with text in its path or query can get 400 (``refuse_nul_bytes`` in
    webapp/security.py refuses NUL bytes before any view runs): say so on every such
    operation, whichever part of the document defines it."""
    for item in paths.values():
        for op in item.values():
            texts = [
                p
                for p in op.get("parameters", [])
                if p.get("in") == "query"
                or (p.get("in") == "path" and p.get("schema", {}).get("type") == "string")
            ]
            if texts and "400" not in op.get("responses", {}):
                op["responses"]["400"] = _errors("400")["400"]


def build_openapi(*, session_cookie: str = "lotsen_session") -> dict[str, Any]:
    """The whole OpenAPI document (a fresh dict each call)."""
    from webapp import openapi_intake, openapi_workspace

    paths = _paths()
    schemas = dict(SCHEMAS)
    for part in (openapi_intake, openapi_workspace):
        paths.update(part.paths())
        schemas.update(part.SCHEMAS)
    _document_text_refusals(paths)
    return copy.deepcopy(
        {
            "openapi": "3.1.0",
            "info": {
                "title": "Lotsen API",
                "version": API_VERSION,
                "description": (
                    "Case workflows for social services. Authenticate with a bearer token "
                    "(`flask --app wsgi lotsen issue-token`) or with the browser session plus an "
                    "`X-CSRFToken` header on POST. A case of another unit is a 404, as in the "
                    "browser. Every error is JSON with `error` and `message`."
                ),
            },
            "servers": [{"url": PREFIX}],
            "security": [{"bearerAuth": []}, {"sessionCookie": [], "csrfHeader": []}],
            "tags": [{"name": "api"}, {"name": "meta"}],
            "paths": paths,
            "components": {
                "schemas": schemas,
                "responses": RESPONSES,
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                    "sessionCookie": {"type": "apiKey", "in": "cookie", "name": session_cookie},
                    "csrfHeader": {"type": "apiKey", "in": "header", "name": "X-CSRFToken"},
                },
            },
        }
    )
