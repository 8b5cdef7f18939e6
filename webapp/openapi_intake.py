"""OpenAPI paths and schemas of the partner intake (issue 6), merged by ``build_openapi``."""

from __future__ import annotations

from typing import Any

from engine.intake import LIMITS, REPORTER_ROLES

_TEXT = {"type": ["string", "null"]}


def _text(key: str, description: str) -> dict[str, Any]:
    return {**_TEXT, "maxLength": LIMITS[key], "description": description}


#: component schemas this part adds (name -> schema)
SCHEMAS: dict[str, Any] = {
    "IntakeReferral": {
        "type": "object",
        "description": (
            "A referral from a partner organisation. Only `kind` and `concern` are required; "
            "unknown keys are ignored. The sending organisation is taken from the token."
        ),
        "properties": {
            "kind": {
                "type": "string",
                "enum": ["child", "adult"],
                "description": "child: a concern about someone under 18 (orosanmälan); "
                "adult: a person who may be exploited.",
            },
            "concern": {
                "type": "string",
                "minLength": 1,
                "maxLength": LIMITS["concern"],
                "description": "What happened and what the concern is.",
            },
            "subject_name": _text("subject_name", "The person's name, if known."),
            "subject_personal_number": {
                **_TEXT,
                "maxLength": 13,
                "description": "Swedish personal identity or coordination number "
                "(YYYYMMDD-NNNN), if known.",
            },
            "subject_birth_date": {
                **_TEXT,
                "maxLength": 10,
                "description": "Date of birth (YYYY-MM-DD), if known.",
            },
            "subject_age": {
                "type": ["integer", "null"],
                "minimum": 0,
                "maximum": 120,
                "description": "Estimated age.",
            },
            "subject_description": _text("subject_description", "Description, whereabouts."),
            "place": _text("place", "Where it happened."),
            "observed": _text("observed", "When it happened (free text)."),
            "reporter_name": _text("reporter_name", "The person at the partner who reports."),
            "reporter_contact": _text("reporter_contact", "Phone or e-mail for questions."),
            "reporter_role": {
                "type": ["string", "null"],
                "enum": [*REPORTER_ROLES, None],
                "description": "The reporter's role.",
            },
            "reporter_organisation": _text("reporter_organisation", "Department or office."),
            "reporter_mandatory": {"type": "boolean", "description": "Has a duty to report."},
            "feedback_requested": {
                "type": "boolean",
                "description": "Asks for feedback (needs reporter_contact).",
            },
        },
        "required": ["kind", "concern"],
    },
    "IntakeReceipt": {
        "type": "object",
        "properties": {
            "receipt": {
                "type": "string",
                "description": "Receipt number (random; it opens nothing).",
            },
            "kind": {"type": "string", "enum": ["child", "adult"]},
            "received_at": {"type": "string", "format": "date-time"},
            "partner": {"type": "string", "description": "The sending organisation."},
        },
        "required": ["receipt", "kind", "received_at", "partner"],
    },
}


#: the shared error responses of ``webapp.openapi`` by status
_RESPONSE_NAMES = {"400": "BadRequest", "401": "Unauthorized", "422": "Unprocessable"}


def ref(status: str) -> dict[str, Any]:
    """A shared error response of the API document."""
    return {"$ref": f"#/components/responses/{_RESPONSE_NAMES[status]}"}


def paths() -> dict[str, Any]:
    """Path items this part adds (path -> item)."""
    return {
        "/intake": {
            "post": {
                "operationId": "createIntakeReferral",
                "summary": "A partner organisation sends a referral to the triage queue.",
                "description": (
                    "Needs a partner's intake token (`flask --app wsgi lotsen create-partner`) "
                    "as a bearer token: scoped to this call only, expiring and revocable. A "
                    "user's API token or a browser session is refused (401). The referral "
                    "cannot be read back; the answer is a receipt number."
                ),
                "tags": ["api"],
                "security": [{"bearerAuth": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/IntakeReferral"}
                        }
                    },
                },
                "responses": {
                    "201": {
                        "description": "Received",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/IntakeReceipt"}
                            }
                        },
                    },
                    "400": ref("400"),
                    "401": ref("401"),
                    "413": {
                        "description": "The referral is larger than 64 KiB.",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                        },
                    },
                    "422": ref("422"),
                    "429": {
                        "description": "Too many referrals from this partner in the last hour.",
                        "headers": {
                            "Retry-After": {
                                "description": "Seconds until the partner may send again.",
                                "schema": {"type": "string"},
                            }
                        },
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                        },
                    },
                },
            }
        }
    }
