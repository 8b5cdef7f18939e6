"""A bounded schemathesis run against the real app (WSGI) with bearer tokens of demo users (the
caseworker first, then a supervisor and a process owner, and no token at all): every operation
in /api/v1/openapi.json (whatever parts exist when the test runs) gets generated valid and
invalid requests, with generated ids and with the ids of real objects, and no answer may be a
5xx or break the document (undocumented status, wrong media type, body not matching its
schema, missing header). Also: every operation documents its answers and errors.

Deterministic and bounded: a fixed number of examples per operation and mode, derandomized,
no example database, so a run takes seconds and finds the same things every time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from test_api_kit import Apis, case_with_proposal, token_for

from engine.db import unit_of_work
from engine.models import ProcessVersion

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

EXAMPLES = {"POSITIVE": 4, "NEGATIVE": 3}
CALLER = "handlaggare"
#: a caseworker (the main caller), the unit's supervisor (approvals) and a process owner
#: (process versions): each sees a different part of the API past its access checks
CALLERS = (CALLER, "arbetsledare", "processagare")
#: operations that do real work on a known object (running every scenario of a version takes
#: seconds): one valid example there, the usual budget with generated ids
EXPENSIVE = {"POST /process-versions/{version_id}/scenarios"}


def _checks() -> list[Callable[..., Any]]:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        response_headers_conformance,
    ]


def _run(
    operation: Any,
    mode: Any,
    headers: dict[str, str],
    checks: list[Any],
    path_parameters: dict[str, Any] | None = None,
    budget: int | None = None,
) -> None:
    @settings(
        max_examples=budget or EXAMPLES[mode.name],
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    def probe(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=checks)

    try:
        probe()
    except Unsatisfiable:
        # nothing left to make invalid once the path is fixed (e.g. a GET by a known id)
        return


def _known_ids(app: Flask) -> dict[str, Any]:
    """Ids of real objects: a case of Vuxenenheten with a proposed D-A6 decision."""
    apis = Apis(app)
    case_id, decision = case_with_proposal(apis)
    case = apis[CALLER].json("GET", f"/cases/{case_id}")
    tasks = apis[CALLER].json("GET", "/tasks")["tasks"]
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        versions = list(db.execute(select(ProcessVersion.id).order_by(ProcessVersion.id)).scalars())
    return {
        "case_id": case_id,
        "decision_id": decision["id"],
        "task_id": (case["open_tasks"] or tasks)[0]["id"],
        "version_id": versions[0],
        "other_id": versions[-1],
    }


def _path_names(operation: Any) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", operation.path))


def test_no_operation_answers_5xx_or_outside_its_schema(app: Flask) -> None:
    known = _known_ids(app)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12, "the document lists every v1 operation"
    checks = _checks()
    failures: dict[str, str] = {}
    for username in (*CALLERS, None):  # None: no credentials at all (401, documented)
        headers = {"Authorization": f"Bearer {token_for(app, username)}"} if username else {}
        for operation in operations:
            names = _path_names(operation)
            fixed: list[dict[str, Any] | None] = [None]
            if username and names and names <= set(known):
                fixed.append({name: known[name] for name in names})
            for params in fixed:
                modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
                budget = None
                if params and operation.label in EXPENSIVE:
                    modes, budget = [GenerationMode.POSITIVE], 1
                for mode in modes:
                    label = f"{username} {operation.label} ({mode.name.lower()}, ids {params})"
                    try:
                        _run(operation, mode, headers, checks, params, budget)
                    except (Exception, BaseExceptionGroup) as exc:  # collect all, report at the end
                        failures[label] = str(exc)[:3000]
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _is_error(document: dict[str, Any], schema: dict[str, Any]) -> bool:
    """An error body: an object with an ``error`` property (every alternative of an anyOf)."""
    node = _resolve(document, schema)
    choices = node.get("anyOf") or node.get("oneOf")
    if choices:
        return all(_is_error(document, choice) for choice in choices)
    return "error" in node.get("properties", {})


def test_every_operation_documents_its_answers_and_errors(app: Flask) -> None:
    """Each operation: a success answer with a schema, a JSON error answer for each failure
    status it lists (at least one), and a schema for any request body."""
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    problems = []
    for path, item in document["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            responses = {s: _resolve(document, r) for s, r in op["responses"].items()}
            ok = [r for s, r in responses.items() if s.startswith("2")]
            if not ok or not all(r.get("content") for r in ok):
                problems.append(f"{where}: no success answer with content")
            errors = {s: r for s, r in responses.items() if s[0] in "45"}
            if not errors and op.get("security") != []:  # only this document is unfailing
                problems.append(f"{where}: no error answers")
            for status, response in errors.items():
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if schema is None or not _is_error(document, schema):
                    problems.append(f"{where} {status}: not a JSON error with `error`")
            if "requestBody" in op:
                content = op["requestBody"].get("content", {})
                if not content or not all(m.get("schema") for m in content.values()):
                    problems.append(f"{where}: request body without a schema")
            if method == "post" and "400" not in responses:
                problems.append(f"{where}: a POST can be malformed: 400 is not documented")
    assert not problems, "\n".join(problems)


def test_a_nul_byte_in_path_or_query_is_a_documented_400(app: Flask) -> None:
    """Found by schemathesis: ``refuse_nul_bytes`` answers 400 before any view, which the
    document did not list for operations with text in the path or query."""
    apis = Apis(app)
    api = apis[CALLER]
    api.call("GET", "/tasks/a%00b", expect=400)
    document = apis.openapi.document
    for path, item in document["paths"].items():
        for method, op in item.items():
            params = op.get("parameters", [])
            if any(p["in"] == "query" for p in params):
                assert "400" in op["responses"], f"{method.upper()} {path}"
                sample = next(p["name"] for p in params if p["in"] == "query")
                if method == "get" and "{" not in path:
                    api.call("GET", f"{path}?{sample}=a%00b", expect=400)
