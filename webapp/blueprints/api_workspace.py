"""JSON API v1 for process versions (issue 5): routes on ``api.bp``.

Routes are added to the API blueprint so they share its authentication, errors and CSRF rules.
Everything is decided in ``engine.workspace``; these routes only parse and shape. Process
versions are not unit data: any caller without the process-owner role gets 403, before an id
is even looked up (so the answer never says whether a version exists).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from flask import g, jsonify, request, url_for
from sqlalchemy import select

from engine import workspace
from engine.errors import Forbidden, ValidationFailed
from engine.models import User
from engine.models.processes import ProcessVersion
from engine.workflow.xmlsafe import MAX_BPMN_BYTES
from engine.workspace import CheckResult
from forms.spec import FormSpecError, load_form_spec
from webapp.blueprints import api
from webapp.blueprints.api import _db_id, _json_body, bp

__all__ = ["bp"]

api.FRESH_AUTH_ENDPOINTS.add("api.approve_process_version")
MAX_FORM_FILES = 200
MAX_FILENAME = 255


def _validate_form(spec: Mapping[str, Any]) -> Sequence[str]:
    """The form builder's own rules, handed to the engine's checker (it may not import forms)."""
    try:
        load_form_spec(spec)
    except FormSpecError as exc:
        return exc.problems
    return []


workspace.set_form_validator(_validate_form)


# --- access ------------------------------------------------------------------------------------


def _owner_only(version_id: int | None = None) -> None:
    """403 for anyone but a process owner (logged with the version asked for)."""
    if workspace.can_edit_processes(g.actor):
        return
    raise Forbidden(
        "only process owners may use process versions",
        denied_kind="process_version" if version_id is not None else None,
        denied_id=version_id,
    )


def _version_id(value: int) -> int:
    _owner_only(value)
    return _db_id(value, "process version")


# --- JSON shapes (webapp/openapi_workspace.py documents them) ------------------------------------


def _ts(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _usernames(versions: Sequence[ProcessVersion]) -> dict[int, str]:
    ids: set[int] = set()
    for v in versions:
        ids.update(
            i
            for i in (v.author_id, v.submitted_by_id, v.published_by_id, v.rejected_by_id)
            if i is not None
        )
    if not ids:
        return {}
    rows = g.db.execute(select(User.id, User.username).where(User.id.in_(ids)))
    return {int(uid): str(name) for uid, name in rows}


def _version_json(version: ProcessVersion, names: Mapping[int, str]) -> dict[str, Any]:
    def who(user_id: int | None) -> str | None:
        return names.get(user_id) if user_id is not None else None

    return {
        "id": version.id,
        "process_id": version.process_id,
        "number": version.number,
        "name": version.name,
        "status": version.status,
        "filename": version.filename,
        "base_version_id": version.base_version_id,
        "created_at": _ts(version.created_at),
        "updated_at": _ts(version.updated_at),
        "author": who(version.author_id),
        "submitted_by": who(version.submitted_by_id),
        "submitted_at": _ts(version.submitted_at),
        "approved_by": who(version.approved_by_id),
        "published_at": _ts(version.published_at),
        "rejected_by": who(version.rejected_by_id),
        "rejected_at": _ts(version.rejected_at),
        "rejected_reason": version.rejected_reason,
        "check_ok": bool(version.check_ok),
        "problems": list(version.problems or []),
    }


def _detail_json(version: ProcessVersion) -> dict[str, Any]:
    body = _version_json(version, _usernames([version]))
    body["bpmn"] = version.bpmn_xml
    body["forms"] = version.forms or {}
    return body


# --- request parsing ---------------------------------------------------------------------------


def _upload() -> tuple[str, bytes, dict[str, Any]]:
    """(filename, BPMN bytes, form specs) from a JSON body or a multipart upload."""
    if request.mimetype == "multipart/form-data":
        return _multipart()
    body = _json_body()
    filename, xml, forms = body.get("filename"), body.get("bpmn"), body.get("forms", {})
    errors: dict[str, list[str]] = {}
    if not isinstance(filename, str) or not filename.strip() or len(filename) > MAX_FILENAME:
        errors["filename"] = ["A file name such as identification.bpmn is required."]
    if not isinstance(xml, str) or not xml.strip():
        errors["bpmn"] = ["The BPMN model is required, as XML text."]
    if forms is None:
        forms = {}
    if not isinstance(forms, dict):
        errors["forms"] = ["Expected an object of form key -> form spec."]
    if errors:
        raise ValidationFailed(errors)
    assert isinstance(filename, str) and isinstance(xml, str) and isinstance(forms, dict)
    return filename.strip(), xml.encode("utf-8"), forms


def _multipart() -> tuple[str, bytes, dict[str, Any]]:
    """``file``: the .bpmn; ``forms``: a JSON object of specs; ``form_files``: <key>.json files."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationFailed({"file": ["Attach the BPMN file as 'file'."]})
    data = upload.stream.read(MAX_BPMN_BYTES + 1)
    forms: dict[str, Any] = {}
    raw_forms = request.form.get("forms")
    if raw_forms:
        try:
            parsed = json.loads(raw_forms)
        except (ValueError, RecursionError):
            raise ValidationFailed({"forms": ["Not valid JSON."]}) from None
        if not isinstance(parsed, dict):
            raise ValidationFailed({"forms": ["Expected an object of form key -> form spec."]})
        forms.update(parsed)
    files = request.files.getlist("form_files")
    if len(files) > MAX_FORM_FILES:
        raise ValidationFailed({"form_files": [f"At most {MAX_FORM_FILES} form files."]})
    for item in files:
        name = (item.filename or "").replace("\\", "/").rsplit("/", 1)[-1]
        if not name.endswith(".json"):
            raise ValidationFailed({"form_files": [f"{name[:80]!r} is not a .json form spec."]})
        try:
            forms[name[: -len(".json")]] = json.loads(item.stream.read(MAX_BPMN_BYTES))
        except (ValueError, RecursionError):
            raise ValidationFailed({"form_files": [f"{name[:80]!r} is not valid JSON."]}) from None
    return upload.filename[:MAX_FILENAME], data, forms


def _refused(result: CheckResult) -> Any:
    response = jsonify(
        {
            "error": "Invalid data",
            "message": "The file was refused; nothing was stored. See check.problems.",
            "check": result.as_dict(),
        }
    )
    response.status_code = 422
    return response


# --- endpoints ---------------------------------------------------------------------------------


@bp.get("/process-versions")
def list_process_versions() -> Any:
    """Every process version (``?process_id=`` for one procedure), newest first."""
    _owner_only()
    process_id = request.args.get("process_id") or None
    versions = workspace.list_versions(g.db, process_id[:100] if process_id else None)
    names = _usernames(versions)
    return jsonify({"versions": [_version_json(v, names) for v in versions]})


@bp.post("/process-versions")
def create_process_version() -> Any:
    """Upload a BPMN model (and its form specs) as a draft; the checker's verdict comes back.

    201 with the stored draft (also when it has problems to fix); 422 when the file is
    refused outright (not BPMN, not well-formed, a DOCTYPE, too large) and nothing is stored.
    """
    _owner_only()
    filename, data, forms = _upload()
    version, result = workspace.import_file(
        g.db, g.actor, filename=filename, data=data, forms=forms
    )
    if version is None:
        return _refused(result)
    response = jsonify({"version": _detail_json(version), "check": result.as_dict()})
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_process_version", version_id=version.id)
    return response


@bp.get("/process-versions/<int:version_id>")
def get_process_version(version_id: int) -> Any:
    """One version with its BPMN XML and form specs (a download of the version)."""
    version = workspace.get_version(g.db, _version_id(version_id))
    return jsonify(_detail_json(version))


@bp.post("/process-versions/<int:version_id>/submit")
def submit_process_version(version_id: int) -> Any:
    """Ask a second process owner to publish a draft that passes the checker."""
    version = workspace.submit(g.db, g.actor, _version_id(version_id))
    return jsonify(_detail_json(version))


@bp.post("/process-versions/<int:version_id>/approve")
def approve_process_version(version_id: int) -> Any:
    """Publish a submitted version (four eyes: not by its author or submitter; fresh login)."""
    version = workspace.approve(g.db, g.actor, _version_id(version_id))
    return jsonify(_detail_json(version))


@bp.post("/process-versions/<int:version_id>/reject")
def reject_process_version(version_id: int) -> Any:
    """Send a submitted version back: ``{"reason": "..."}``."""
    version_id = _version_id(version_id)
    reason = _json_body(optional=True).get("reason")
    if not isinstance(reason, str):
        raise ValidationFailed({"reason": ["Give a reason for the rejection."]})
    version = workspace.reject(g.db, g.actor, version_id, reason)
    return jsonify(_detail_json(version))


@bp.get("/process-versions/<int:version_id>/diff/<int:other_id>")
def diff_process_versions(version_id: int, other_id: int) -> Any:
    """What changed from this version to ``other_id``: elements and form fields."""
    version_id = _version_id(version_id)
    result = workspace.diff(g.db, version_id, _db_id(other_id, "process version"))
    return jsonify(result.as_dict())


@bp.post("/process-versions/<int:version_id>/migrate")
def migrate_to_process_version(version_id: int) -> Any:
    """Which running cases can move to this version; ``{"apply": true}`` moves them."""
    version_id = _version_id(version_id)
    apply = _json_body(optional=True).get("apply", False)
    if not isinstance(apply, bool):
        raise ValidationFailed({"apply": ["Expected true or false."]})
    report = workspace.migrate(g.db, g.actor, version_id, apply=apply)
    return jsonify(report.as_dict())


@bp.post("/process-versions/<int:version_id>/scenarios")
def run_process_version_scenarios(version_id: int) -> Any:
    """Run the procedure's scenario files against this version, in a throwaway database."""
    version_id = _version_id(version_id)
    results = workspace.run_scenarios(g.db, version_id)
    return jsonify(
        {
            "version_id": version_id,
            "passed": all(r.passed for r in results),
            "results": [r.as_dict() for r in results],
        }
    )
