"""Helpers for the JSON API tests (no tests here): tokens, a client that checks every response
against the OpenAPI document, and a runner for the identification scenarios over HTTP.

The schema check is a small JSON Schema subset (type, properties, required, items, enum,
anyOf/oneOf/allOf, $ref, format date-time, min/max length). It is strict: an object property
the document does not declare fails, unless the schema allows ``additionalProperties``. When
``jsonschema`` is importable the same check also runs through it.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from webapp.tokens import issue_token

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCENARIO_DIR = PROJECT_ROOT / "bpmn" / "identification" / "scenarios"
PREFIX = "/api/v1"

#: The demo user who works a task of each lane.
ROLE_USERS = {
    "caseworker": "handlaggare",
    "supervisor": "arbetsledare",
    "dv_team": "kvinnofrid",
    "coordinator": "samordnare",
}


def load_scenario(name: str) -> dict[str, Any]:
    """One scenario file of the identification procedure, by file name prefix."""
    (path,) = sorted(SCENARIO_DIR.glob(f"{name}*.json"))
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def token_for(app: Flask, username: str, **kwargs: Any) -> str:
    """A real token from ``webapp.tokens.issue_token``."""
    return issue_token(app.extensions["lotsen"], username, **kwargs)


def b64(data: Mapping[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- schema checking -----------------------------------------------------------------------------


class SchemaMismatch(AssertionError):
    pass


def _resolve(root: Mapping[str, Any], ref: str) -> Mapping[str, Any]:
    assert ref.startswith("#/"), ref
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part]
    return node  # type: ignore[no-any-return]


_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _type_ok(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def check_schema(
    root: Mapping[str, Any], schema: Mapping[str, Any], value: Any, where: str = "$"
) -> None:
    """Raise SchemaMismatch when ``value`` does not match ``schema`` (strict on objects)."""
    if "$ref" in schema:
        check_schema(root, _resolve(root, schema["$ref"]), value, where)
        return
    for sub in schema.get("allOf", ()):
        check_schema(root, sub, value, where)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            matches = 0
            problems = []
            for sub in schema[key]:
                try:
                    check_schema(root, sub, value, where)
                    matches += 1
                except SchemaMismatch as exc:
                    problems.append(str(exc))
            if matches == 0 or (key == "oneOf" and matches > 1):
                raise SchemaMismatch(f"{where}: {key} not satisfied: {problems}")
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_type_ok(value, t) for t in types):
            raise SchemaMismatch(f"{where}: {value!r:.80} is not {types}")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaMismatch(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, str):
        if schema.get("format") == "date-time":
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError as exc:
                raise SchemaMismatch(f"{where}: {value!r} is not a date-time") from exc
            if parsed.tzinfo is None:
                raise SchemaMismatch(f"{where}: {value!r} has no time zone")
        if "minLength" in schema and len(value) < schema["minLength"]:
            raise SchemaMismatch(f"{where}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise SchemaMismatch(f"{where}: longer than {schema['maxLength']}")
    if isinstance(value, dict) and ("properties" in schema or "additionalProperties" in schema):
        properties = schema.get("properties", {})
        for key in schema.get("required", ()):
            if key not in value:
                raise SchemaMismatch(f"{where}: missing required {key!r}")
        extra = schema.get("additionalProperties", False)
        for key, item in value.items():
            if key in properties:
                check_schema(root, properties[key], item, f"{where}.{key}")
            elif extra is False:
                raise SchemaMismatch(f"{where}: undocumented property {key!r}")
            elif isinstance(extra, dict):
                check_schema(root, extra, item, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            check_schema(root, schema["items"], item, f"{where}[{index}]")


def _jsonschema_check(document: Mapping[str, Any], schema: Mapping[str, Any], value: Any) -> None:
    try:
        import jsonschema
    except ImportError:
        return
    jsonschema.validate(value, {**schema, "components": document["components"]})


class OpenApi:
    """The served document, and the schema of each (path, method, status)."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self.prefix = document["servers"][0]["url"]
        self.routes = []
        for template, item in document["paths"].items():
            pattern = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template))
            self.routes.append((re.compile(pattern + r"\Z"), template, item))

    def operation(self, path: str, method: str) -> tuple[str, Mapping[str, Any]]:
        assert path.startswith(self.prefix), path
        local = path[len(self.prefix) :].split("?")[0]
        for pattern, template, item in self.routes:
            if pattern.match(local) and method.lower() in item:
                return template, item[method.lower()]
        raise AssertionError(f"{method} {path} is not in the OpenAPI document")

    def check(self, method: str, path: str, response: TestResponse) -> None:
        """The response's status, media type and JSON body are what the document says."""
        template, op = self.operation(path, method)
        status = str(response.status_code)
        spec = op["responses"].get(status)
        assert spec is not None, f"{method} {template} answered {status}, not documented"
        if "$ref" in spec:
            spec = _resolve(self.document, spec["$ref"])
        media = (response.mimetype or "").lower()
        content = spec.get("content", {})
        assert media in content, f"{method} {template} {status}: {media} not documented"
        schema = content[media]["schema"]
        if media == "application/json":
            body = response.get_json()
            check_schema(self.document, schema, body, f"{method} {template} {status}")
            _jsonschema_check(self.document, schema, body)
        for header in spec.get("headers", {}):
            assert header in response.headers, f"{method} {template}: no {header} header"


# --- a client that checks every answer ----------------------------------------------------------


class Api:
    """HTTP calls to /api/v1 as one caller; every response is checked against the document."""

    def __init__(
        self,
        client: FlaskClient,
        openapi: OpenApi,
        token: str | None = None,
        csrf: str | None = None,
    ) -> None:
        self.client = client
        self.openapi = openapi
        self.token = token
        self.csrf = csrf

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.csrf is not None:
            headers["X-CSRFToken"] = self.csrf
        headers.update(extra or {})
        return headers

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        expect: int | None = None,
        content_type: str | None = None,
    ) -> TestResponse:
        url = PREFIX + path
        kwargs: dict[str, Any] = {"headers": self.headers(headers)}
        if json_body is not None:
            kwargs["json"] = json_body
        if data is not None:
            kwargs["data"] = data
        if content_type is not None:
            kwargs["content_type"] = content_type
        response = self.client.open(url, method=method, **kwargs)
        if expect is not None:
            assert response.status_code == expect, (
                f"{method} {path}: {response.status_code} {response.get_data(as_text=True)[:500]}"
            )
        self.openapi.check(method, url, response)
        if response.status_code in (401, 400, 403, 404, 409, 422):
            assert response.headers.get("Cache-Control") == "no-store"
        return response

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, json_body: Any = None, **kwargs: Any) -> TestResponse:
        return self.call("POST", path, json_body=json_body, **kwargs)

    def json(self, method: str, path: str, json_body: Any = None, expect: int = 200) -> Any:
        return self.call(method, path, json_body=json_body, expect=expect).get_json()


class Apis:
    """One ``Api`` per demo user (bearer tokens), sharing the app's test client."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client = app.test_client()
        document = self.client.get(PREFIX + "/openapi.json")
        assert document.status_code == 200
        self.openapi = OpenApi(document.get_json())
        self._apis: dict[str, Api] = {}

    def __getitem__(self, username: str) -> Api:
        if username not in self._apis:
            self._apis[username] = Api(self.client, self.openapi, token_for(self.app, username))
        return self._apis[username]

    def anonymous(self, token: str | None = None) -> Api:
        return Api(self.app.test_client(), self.openapi, token)

    def for_client(self, client: FlaskClient, csrf: str | None = None) -> Api:
        return Api(client, self.openapi, None, csrf)


# --- procedures over HTTP -------------------------------------------------------------------------


def start_case(api: Api, intake: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """POST /cases for the identification procedure; the created case JSON."""
    response = api.post(
        "/cases", {"procedure": "identification", "data": dict(intake), **extra}, expect=201
    )
    body: dict[str, Any] = response.get_json()
    assert response.headers["Location"].endswith(f"/api/v1/cases/{body['id']}")
    return body


def open_task(apis: Apis, case_id: int, bpmn_id: str) -> dict[str, Any]:
    """The one open task with ``bpmn_id`` in the case (read as the case's caseworker)."""
    case = apis["handlaggare"].json("GET", f"/cases/{case_id}")
    found: list[dict[str, Any]] = [t for t in case["open_tasks"] if t["bpmn_id"] == bpmn_id]
    assert len(found) == 1, (
        f"expected {bpmn_id}; open: {[t['bpmn_id'] for t in case['open_tasks']]}"
    )
    return found[0]


def complete(
    apis: Apis, case_id: int, bpmn_id: str, data: Mapping[str, Any], username: str | None = None
) -> dict[str, Any]:
    """Complete the open ``bpmn_id`` task as its lane's demo user, over HTTP."""
    task = open_task(apis, case_id, bpmn_id)
    api = apis[username or ROLE_USERS[task["role"]]]
    detail = api.json("GET", f"/tasks/{task['id']}")
    assert detail["form"]["components"], "a task comes with its form spec"
    result: dict[str, Any] = api.json(
        "POST", f"/tasks/{task['id']}/complete", {"data": dict(data), "version": detail["version"]}
    )
    return result


def proposed_decision(apis: Apis, case_id: int, decision_type: str) -> dict[str, Any]:
    case = apis["handlaggare"].json("GET", f"/cases/{case_id}")
    found: list[dict[str, Any]] = [
        d for d in case["decisions"] if d["type"] == decision_type and d["status"] == "proposed"
    ]
    assert len(found) == 1, case["decisions"]
    return found[0]


def play(apis: Apis, case_id: int, steps: list[dict[str, Any]]) -> None:
    """Play scenario steps (complete, approve, return) on a case through the API."""
    for step in steps:
        if "complete" in step:
            complete(apis, case_id, step["complete"], step["data"])
        elif "approve" in step:
            decision = proposed_decision(apis, case_id, step["approve"])
            body = apis["arbetsledare"].json("POST", f"/decisions/{decision['id']}/approve", {})
            assert body["status"] == "approved" and body["document_id"] is not None
        elif "return" in step:
            decision = proposed_decision(apis, case_id, step["return"])
            body = apis["arbetsledare"].json(
                "POST", f"/decisions/{decision['id']}/return", {"comment": step["comment"]}
            )
            assert body["status"] == "returned" and body["comment"] == step["comment"]
        else:
            raise AssertionError(f"unknown step {step}")


def run_scenario(apis: Apis, scenario: Mapping[str, Any]) -> int:
    """Start the scenario's case and play every step through the API; the case id."""
    case = start_case(apis["handlaggare"], scenario["intake"])
    play(apis, case["id"], scenario["steps"])
    return int(case["id"])


def case_with_proposal(apis: Apis) -> tuple[int, dict[str, Any]]:
    """A case of Vuxenenheten whose D-A6 assessment is proposed: (case id, decision summary)."""
    scenario = load_scenario("01")
    steps = scenario["steps"]
    upto = next(i for i, s in enumerate(steps) if s.get("approve") == "D-A6")
    case = start_case(apis["handlaggare"], scenario["intake"])
    play(apis, case["id"], steps[:upto])
    return int(case["id"]), proposed_decision(apis, case["id"], "D-A6")


def new_case(apis: Apis) -> dict[str, Any]:
    """A fresh case of Vuxenenheten (scenario 01's intake), as its JSON."""
    return start_case(apis["handlaggare"], load_scenario("01")["intake"])
