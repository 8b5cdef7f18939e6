"""CSRF probes of the process-version API (session callers need ``X-CSRFToken``).

Each builder arranges a version of the identification model in the state its route acts on,
through the engine (``engine.workspace``), and says how to see whether the call took effect.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from engine import workspace
from engine.db import unit_of_work
from engine.models.processes import ProcessVersion
from engine.processes import read_procedure_folder
from tests.conftest import actor

IDENTIFICATION = read_procedure_folder(
    Path(__file__).resolve().parents[2] / "bpmn" / "identification"
)
OWNER, SECOND = "processagare", "processagare2"

ROUTES: dict[tuple[str, str], Callable[[Any], Any]] = {}


def _renamed() -> str:
    text = IDENTIFICATION.bpmn_xml.decode("utf-8")
    return text.replace('name="A4 Indikatorbedömning"', 'name="A4 Indikatorer (CSRF)"', 1)


def _version(ctx: Any, *, submitted_by: str | None = None) -> int:
    """A fresh draft by ``processagare2`` (optionally submitted) of the identification model."""
    with unit_of_work(ctx.app.extensions["lotsen_db"]) as db:
        version, _ = workspace.save_draft(
            db,
            actor(db, SECOND),
            bpmn_xml=_renamed(),
            forms=IDENTIFICATION.forms,
            filename="identification.bpmn",
        )
        if submitted_by is not None:
            workspace.submit(db, actor(db, submitted_by), version.id)
        return int(version.id)


def _status(ctx: Any, version_id: int) -> Any:
    return ctx.scalar(select(ProcessVersion.status).where(ProcessVersion.id == version_id))


def _create(ctx: Any) -> Any:
    from test_csrf import ApiAttempt

    body = {"filename": "identification.bpmn", "bpmn": _renamed(), "forms": IDENTIFICATION.forms}
    count = select(func.count()).select_from(ProcessVersion)
    return ApiAttempt(OWNER, "/api/v1/process-versions", body, lambda: ctx.scalar(count))


def _submit(ctx: Any) -> Any:
    from test_csrf import ApiAttempt

    version_id = _version(ctx)
    path = f"/api/v1/process-versions/{version_id}/submit"
    return ApiAttempt(OWNER, path, {}, lambda: _status(ctx, version_id))


def _approve(ctx: Any) -> Any:
    from test_csrf import ApiAttempt

    version_id = _version(ctx, submitted_by=SECOND)
    path = f"/api/v1/process-versions/{version_id}/approve"
    return ApiAttempt(OWNER, path, {}, lambda: _status(ctx, version_id))


def _reject(ctx: Any) -> Any:
    from test_csrf import ApiAttempt

    version_id = _version(ctx, submitted_by=SECOND)
    path = f"/api/v1/process-versions/{version_id}/reject"
    body = {"reason": "The CSRF probe sends this back."}
    return ApiAttempt(OWNER, path, body, lambda: _status(ctx, version_id))


def _migrate(ctx: Any) -> Any:
    from test_csrf import ApiAttempt

    version_id = _version(ctx)
    path = f"/api/v1/process-versions/{version_id}/migrate"
    # a dry run changes nothing: the control only shows the call got past the CSRF check
    return ApiAttempt(OWNER, path, {}, lambda: _status(ctx, version_id), changes=False)


def _scenarios(ctx: Any) -> Any:
    from test_csrf import ApiAttempt

    version_id = _version(ctx)
    path = f"/api/v1/process-versions/{version_id}/scenarios"
    return ApiAttempt(OWNER, path, {}, lambda: _status(ctx, version_id), changes=False)


API_ROUTES: dict[tuple[str, str], Callable[[Any], Any]] = {
    ("api.create_process_version", "POST"): _create,
    ("api.submit_process_version", "POST"): _submit,
    ("api.approve_process_version", "POST"): _approve,
    ("api.reject_process_version", "POST"): _reject,
    ("api.migrate_to_process_version", "POST"): _migrate,
    ("api.run_process_version_scenarios", "POST"): _scenarios,
}
