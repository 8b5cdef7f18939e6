"""The OpenAPI document at /api/v1/openapi.json: public, complete (every API route is in it and
nothing else), internally consistent, and valid OpenAPI when the validator is installed.
(That every response matches it is checked by test_api_kit.Api on every call.)"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from test_api_kit import OpenApi, SchemaMismatch, check_schema


@pytest.fixture
def document(app: Flask) -> dict[str, Any]:
    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    return body


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_document_is_public_and_has_the_required_parts(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.")
    schemas = document["components"]["schemas"]
    for name in (
        "Case",
        "Task",
        "TaskDetail",
        "Decision",
        "Error",
        "ValidationError",
        "Me",
        "Process",
    ):
        assert name in schemas, name
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    statuses = {s for p in document["paths"].values() for op in p.values() for s in op["responses"]}
    assert {"200", "201", "400", "401", "403", "404", "409", "422"} <= statuses
    assert set(schemas["Decision"]["properties"]["status"]["enum"]) == {
        "proposed",
        "approved",
        "returned",
    }
    assert {"id", "case_id", "name", "role", "due_at", "version"} <= set(
        schemas["Task"]["required"]
    )
    assert "form" in schemas["TaskDetail"]["properties"]
    assert {"id", "number", "procedure", "status", "open_tasks", "decisions"} <= set(
        schemas["Case"]["required"]
    )


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    for ref in _refs(document):
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            assert part in node, ref
            node = node[part]


def test_every_api_route_is_documented_and_nothing_else(
    app: Flask, document: dict[str, Any]
) -> None:
    served = set()
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api."):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule).removeprefix("/api/v1")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            served.add((path, method.lower()))
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert served == documented


def test_path_parameters_match_the_templates(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        names = set(re.findall(r"\{(\w+)\}", path))
        for op in item.values():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, path
            assert op["operationId"]


def test_schema_checker_is_strict(document: dict[str, Any]) -> None:
    api = OpenApi(document)
    task_schema = {"$ref": "#/components/schemas/Task"}
    task = {
        "id": "t",
        "case_id": 1,
        "case_number": "ID-1",
        "procedure": "p",
        "bpmn_id": "b",
        "name": "n",
        "role": None,
        "status": "open",
        "due_at": None,
        "overdue": False,
        "version": 1,
        "assignee_id": None,
        "decision_id": None,
        "is_approval": False,
    }
    check_schema(api.document, task_schema, task)
    for broken in (
        {**task, "secret": 1},
        {**task, "version": "1"},
        {**task, "status": "x"},
        {k: v for k, v in task.items() if k != "id"},
        {**task, "due_at": "2026-01-01T10:00:00"},
    ):
        with pytest.raises(SchemaMismatch):
            check_schema(api.document, task_schema, broken)


def test_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(document)


def test_document_has_no_personal_data(app: Flask, document: dict[str, Any]) -> None:
    text = str(document)
    for needle in ("handlaggare", "Hanna", "personnummer", "@"):
        assert needle not in text, needle
