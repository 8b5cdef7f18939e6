"""Helpers for the security.md §6 case tests (no tests here)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from engine.db import unit_of_work
from engine.models import AuditEntry, OpenTask, RoleAssignment, Unit, User
from engine.passwords import hash_password
from tests.webapp.test_pages_kit import as_form, csrf, get, task_form_fields

TESTS = Path(__file__).resolve().parent.parent
CASE_TEST = re.compile(r"^test_case_(\d{2})_[a-z0-9_]+$")


def extra_caseworker(app: Flask, username: str, unit: str = "vuxenenheten") -> None:
    """A second caseworker of ``unit`` who logs in with the password ``demo``."""
    with unit_of_work(app.extensions["lotsen_db"]) as s:
        unit_id = s.execute(select(Unit.id).where(Unit.key == unit)).scalar_one()
        user = User(
            username=username,
            display_name=username.title(),
            password_hash=hash_password("demo"),
            active=True,
        )
        user.roles = [RoleAssignment(role="caseworker", unit_id=unit_id)]
        s.add(user)


def task_form(client: FlaskClient, task_id: str) -> tuple[str, list[tuple[str, str]]]:
    """The task page and its hidden version and submission id."""
    page = get(client, f"/tasks/{task_id}")
    return page, task_form_fields(page)


def post_completion(
    client: FlaskClient, task_id: str, page: str, fields: list[tuple[str, str]], data: Any
) -> TestResponse:
    """POST the completion of a task form as a browser would (CSRF token of ``page``)."""
    from werkzeug.datastructures import MultiDict

    items = [("csrf_token", csrf(page)), *fields, ("action", "complete"), *as_form(data)]
    return client.post(f"/tasks/{task_id}", data=MultiDict(items))


def count_audit(app: Flask, action: str, object_id: str | int | None = None) -> int:
    with app.extensions["lotsen_db"]() as s:
        query = select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action)
        if object_id is not None:
            query = query.where(AuditEntry.object_id == str(object_id))
        return int(s.execute(query).scalar_one())


def open_bpmn_ids(app: Flask, case_id: int) -> list[str]:
    with app.extensions["lotsen_db"]() as s:
        rows = s.execute(
            select(OpenTask.bpmn_id).where(OpenTask.case_id == case_id, OpenTask.status == "open")
        )
        return sorted(rows.scalars())


def case_test_names(root: Path = TESTS) -> dict[int, list[str]]:
    """{case number: ["path::test_case_NN_name", ...]} over every test file under ``root``."""
    found: dict[int, list[str]] = {}
    for path in sorted(root.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                match = CASE_TEST.match(node.name)
                if match:
                    where = f"{path.relative_to(root)}::{node.name}"
                    found.setdefault(int(match.group(1)), []).append(where)
    return found
