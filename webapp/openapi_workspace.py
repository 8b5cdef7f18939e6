"""OpenAPI paths and schemas of process versions (issue 5), merged by ``build_openapi``."""

from __future__ import annotations

from typing import Any

from webapp.openapi import (
    BOOLEAN,
    DATETIME,
    FREE_OBJECT,
    INTEGER,
    STRING,
    _json,
    _nullable,
    _object,
    _op,
    _path_param,
    _ref,
)

_WRITE = ("400",)
VERSION_ID = _path_param("version_id", {**INTEGER, "minimum": 1}, "Process version id.")
OTHER_ID = _path_param("other_id", {**INTEGER, "minimum": 1}, "The version to compare with.")
_STATUS = {"type": "string", "enum": ["draft", "submitted", "published", "rejected"]}
_USER = _nullable({**STRING, "description": "Username."})

_PROBLEM = _object(
    {
        "element_id": _nullable({**STRING, "description": "The BPMN element to highlight."}),
        "code": {**STRING, "description": "Stable rule name, e.g. lane.unknown."},
        "message_en": STRING,
        "message_sv": STRING,
        "line": _nullable(INTEGER),
    }
)
_VERSION_PROPERTIES: dict[str, Any] = {
    "id": INTEGER,
    "process_id": STRING,
    "number": INTEGER,
    "name": STRING,
    "status": _STATUS,
    "filename": _nullable(STRING),
    "base_version_id": _nullable(
        {**INTEGER, "description": "The published version this one was edited from."}
    ),
    "created_at": DATETIME,
    "updated_at": _nullable(DATETIME),
    "author": _USER,
    "submitted_by": _USER,
    "submitted_at": _nullable(DATETIME),
    "approved_by": {**_USER, "description": "The second process owner who published it."},
    "published_at": _nullable(DATETIME),
    "rejected_by": _USER,
    "rejected_at": _nullable(DATETIME),
    "rejected_reason": _nullable(STRING),
    "check_ok": {**BOOLEAN, "description": "The checker found nothing to fix at the last save."},
    "problems": {"type": "array", "items": _ref("CheckProblem")},
}
_CHANGE = _object(
    {
        "attribute": {
            **STRING,
            "description": "name, lane, form_key, condition, timer, decision_type, legal_ref, "
            "deadline, properties, source, target, ...",
        },
        "old": {"description": "The value in the first version (any JSON)."},
        "new": {"description": "The value in the second version (any JSON)."},
    }
)
_ELEMENT = _object({"id": STRING, "type": STRING, "name": _nullable(STRING)})

#: component schemas this part adds (name -> schema)
SCHEMAS: dict[str, Any] = {
    "CheckProblem": _PROBLEM,
    "CheckResult": _object(
        {
            "ok": BOOLEAN,
            "process_id": _nullable(STRING),
            "name": _nullable(STRING),
            "problems": {"type": "array", "items": _ref("CheckProblem")},
        }
    ),
    "ProcessVersion": _object(_VERSION_PROPERTIES),
    "ProcessVersionDetail": _object(
        {
            **_VERSION_PROPERTIES,
            "bpmn": {**STRING, "description": "The BPMN 2.0 XML."},
            "forms": {
                "type": "object",
                "description": "Form specs by form key.",
                "additionalProperties": _ref("FormSpec"),
            },
        }
    ),
    "ProcessVersionList": _object({"versions": {"type": "array", "items": _ref("ProcessVersion")}}),
    "ProcessVersionCreated": _object(
        {"version": _ref("ProcessVersionDetail"), "check": _ref("CheckResult")}
    ),
    "ProcessVersionRefused": _object(
        {"error": STRING, "message": STRING, "check": _ref("CheckResult")}
    ),
    "ProcessVersionUpload": _object(
        {
            "filename": {**STRING, "description": "e.g. identification.bpmn", "maxLength": 255},
            "bpmn": {**STRING, "description": "The BPMN 2.0 XML (at most 2 MB)."},
            "forms": {**FREE_OBJECT, "description": "Form specs by form key."},
        },
        required=["filename", "bpmn"],
    ),
    "ProcessVersionMultipart": _object(
        {
            "file": {"type": "string", "format": "binary", "description": "The .bpmn file."},
            "forms": {**STRING, "description": "A JSON object of form specs by form key."},
            "form_files": {
                "type": "array",
                "items": {"type": "string", "format": "binary"},
                "description": "Form specs as <form_key>.json files.",
            },
        },
        required=["file"],
    ),
    "ProcessVersionReject": _object({"reason": {**STRING, "minLength": 1, "maxLength": 2000}}),
    "ProcessVersionMigrate": _object(
        {"apply": {**BOOLEAN, "description": "Move the instances; false (default): dry run."}},
        required=[],
    ),
    "VersionDiff": _object(
        {
            "from_version_id": _nullable(INTEGER),
            "to_version_id": _nullable(INTEGER),
            "elements": _object(
                {
                    "added": {"type": "array", "items": _ELEMENT},
                    "removed": {"type": "array", "items": _ELEMENT},
                    "changed": {
                        "type": "array",
                        "items": _object(
                            {
                                **_ELEMENT["properties"],
                                "changes": {"type": "array", "items": _CHANGE},
                            }
                        ),
                    },
                }
            ),
            "forms": {
                "type": "array",
                "items": _object(
                    {
                        "form_key": STRING,
                        "status": {"type": "string", "enum": ["added", "removed", "changed"]},
                        "fields_added": {"type": "array", "items": STRING},
                        "fields_removed": {"type": "array", "items": STRING},
                        "fields_changed": {
                            "type": "array",
                            "items": _object(
                                {"key": STRING, "attributes": {"type": "array", "items": STRING}}
                            ),
                        },
                    }
                ),
            },
            "unreadable": {**BOOLEAN, "description": "A diagram could not be read."},
        }
    ),
    "InstancePlan": _object(
        {
            "instance_id": INTEGER,
            "case_id": INTEGER,
            "case_number": STRING,
            "from_version_id": INTEGER,
            "from_number": INTEGER,
            "to_version_id": INTEGER,
            "can_move": BOOLEAN,
            "reasons": {"type": "array", "items": STRING},
            "reasons_sv": {"type": "array", "items": STRING},
        }
    ),
    "MigrationReport": _object(
        {
            "version_id": INTEGER,
            "applied": BOOLEAN,
            "instances": {"type": "array", "items": _ref("InstancePlan")},
            "movable": INTEGER,
            "moved": {"type": "array", "items": INTEGER},
        }
    ),
    "ScenarioRun": _object(
        {
            "version_id": INTEGER,
            "passed": BOOLEAN,
            "results": {
                "type": "array",
                "items": _object({"name": STRING, "passed": BOOLEAN, "message": STRING}),
            },
        }
    ),
}


def _detail(description: str) -> tuple[str, Any]:
    return ("200", _json(_ref("ProcessVersionDetail"), description))


def paths() -> dict[str, Any]:
    """Path items this part adds (path -> item); may use the helpers of ``webapp.openapi``."""
    create = _op(
        "createProcessVersion",
        "Upload a BPMN model and its form specs as a draft (process owners).",
        (
            "201",
            {
                **_json(_ref("ProcessVersionCreated"), "The stored draft and the checker's result"),
                "headers": {"Location": {"schema": STRING, "description": "URL of the version."}},
            },
        ),
        (*_WRITE, "403"),
    )
    create["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {"schema": _ref("ProcessVersionUpload")},
            "multipart/form-data": {"schema": _ref("ProcessVersionMultipart")},
        },
    }
    create["responses"]["422"] = {
        "description": "Field errors, or the file was refused (nothing stored): check.problems",
        "content": {
            "application/json": {
                "schema": {"anyOf": [_ref("ValidationError"), _ref("ProcessVersionRefused")]}
            }
        },
    }
    return {
        "/process-versions": {
            "get": _op(
                "listProcessVersions",
                "Every process version, newest first (process owners).",
                ("200", _json(_ref("ProcessVersionList"), "Versions")),
                ("403",),
                params=[
                    {
                        "name": "process_id",
                        "in": "query",
                        "required": False,
                        "schema": STRING,
                        "description": "Only the versions of this procedure.",
                    }
                ],
            ),
            "post": create,
        },
        "/process-versions/{version_id}": {
            "get": _op(
                "getProcessVersion",
                "One version with its BPMN XML and form specs.",
                _detail("The version"),
                ("403", "404"),
                params=[VERSION_ID],
            ),
        },
        "/process-versions/{version_id}/submit": {
            "post": _op(
                "submitProcessVersion",
                "Submit a draft for approval (it must pass the checker).",
                _detail("The submitted version"),
                (*_WRITE, "403", "404", "409", "422"),
                params=[VERSION_ID],
            ),
        },
        "/process-versions/{version_id}/approve": {
            "post": _op(
                "approveProcessVersion",
                "Publish a submitted version: a second process owner, who neither wrote nor "
                "submitted it, with a fresh login. New cases start on it; running cases stay.",
                _detail("The published version"),
                (*_WRITE, "403", "404", "409", "422"),
                params=[VERSION_ID],
            ),
        },
        "/process-versions/{version_id}/reject": {
            "post": _op(
                "rejectProcessVersion",
                "Send a submitted version back with a reason.",
                _detail("The rejected version"),
                (*_WRITE, "403", "404", "409", "422"),
                body="ProcessVersionReject",
                params=[VERSION_ID],
            ),
        },
        "/process-versions/{version_id}/diff/{other_id}": {
            "get": _op(
                "diffProcessVersions",
                "Elements and form fields added, removed and changed between two versions.",
                ("200", _json(_ref("VersionDiff"), "The differences")),
                ("403", "404"),
                params=[VERSION_ID, OTHER_ID],
            ),
        },
        "/process-versions/{version_id}/migrate": {
            "post": _op(
                "migrateToProcessVersion",
                "Which running cases can move to this published version (dry run), or move "
                'them with {"apply": true}. Only cases none of whose started or finished '
                "steps changed can move.",
                ("200", _json(_ref("MigrationReport"), "The plan, or what was moved")),
                (*_WRITE, "403", "404", "409", "422"),
                body="ProcessVersionMigrate",
                body_required=False,
                params=[VERSION_ID],
            ),
        },
        "/process-versions/{version_id}/scenarios": {
            "post": _op(
                "runProcessVersionScenarios",
                "Run the procedure's scenario files against this version in a throwaway "
                "database (never the live one).",
                ("200", _json(_ref("ScenarioRun"), "One result per scenario file")),
                (*_WRITE, "403", "404"),
                params=[VERSION_ID],
            ),
        },
    }
