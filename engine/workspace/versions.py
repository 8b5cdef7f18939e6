"""Version life cycle: draft -> submitted -> published (or rejected), with four eyes.

Publishing a model is a code deployment (security.md §3.4): a second process owner, who
neither wrote nor submitted the version, must approve it, and every step is audited.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine import audit
from engine.audit import Actor
from engine.db import utcnow
from engine.errors import Conflict, Forbidden, NotFound, ValidationFailed
from engine.models.processes import DRAFT, PUBLISHED, REJECTED, SUBMITTED, ProcessVersion
from engine.processes import sha256_of
from engine.roles import PROCESS_OWNER
from engine.workspace.checker import CheckResult, as_utf8, check, xml_text_bytes

__all__ = [
    "MAX_FORMS_BYTES",
    "approve",
    "can_edit_processes",
    "check_version",
    "get_version",
    "list_versions",
    "reject",
    "save_draft",
    "submit",
]

MAX_FORMS_BYTES = 2 * 1024 * 1024
MAX_REASON_LENGTH = 2000
MAX_FILENAME_LENGTH = 255
MAX_DB_ID = 2**31 - 1
_PROCESS_ID_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,99}")

# Refusals are fixed sentences so the UI can translate them (pending/workspace_engine.po).
MSG_OWNERS_ONLY = "Only process owners may change process versions."
MSG_ONLY_DRAFT_CHANGED = "Only a draft can be changed. Save a new draft instead."
MSG_ONLY_DRAFT_SUBMITTED = "Only a draft can be submitted."
MSG_ONLY_SUBMITTED_PUBLISHED = "Only a submitted version can be published."
MSG_ONLY_SUBMITTED_REJECTED = "Only a submitted version can be rejected."
MSG_FOUR_EYES = (
    "Four eyes: a second process owner, who neither wrote nor submitted this version, "
    "must approve it."
)
MSG_STALE = (
    "A newer version of this procedure was published after this draft was started. "
    "Save it as a new draft from the newest version and submit it again."
)
MSG_CHECK_FAILED = "The checker found problems in this version. Fix them first."
MSG_SAVED_CONCURRENTLY = (
    "Another version of this procedure was saved at the same moment. Save again."
)


def can_edit_processes(actor: Actor) -> bool:
    """Only process owners edit, submit, approve and migrate process versions."""
    return actor.has_role(PROCESS_OWNER)


def _require_owner(actor: Actor) -> None:
    if not can_edit_processes(actor):
        raise Forbidden(MSG_OWNERS_ONLY)


def get_version(db: Session, version_id: int) -> ProcessVersion:
    """One version by id; NotFound when there is none."""
    if not isinstance(version_id, int) or not 1 <= version_id <= MAX_DB_ID:
        raise NotFound("process version not found")
    version = db.get(ProcessVersion, version_id)
    if version is None:
        raise NotFound("process version not found")
    return version


def list_versions(db: Session, process_id: str | None = None) -> list[ProcessVersion]:
    """Every version (of one procedure), procedure by procedure, newest first."""
    query = select(ProcessVersion).order_by(ProcessVersion.process_id, ProcessVersion.number.desc())
    if process_id is not None:
        query = query.where(ProcessVersion.process_id == process_id)
    return list(db.execute(query).scalars())


def _latest_published(db: Session, process_id: str) -> ProcessVersion | None:
    return db.execute(
        select(ProcessVersion)
        .where(ProcessVersion.process_id == process_id, ProcessVersion.status == PUBLISHED)
        .order_by(ProcessVersion.number.desc())
        .limit(1)
    ).scalar_one_or_none()


def _next_number(db: Session, process_id: str) -> int:
    current = db.execute(
        select(func.max(ProcessVersion.number)).where(ProcessVersion.process_id == process_id)
    ).scalar_one_or_none()
    return int(current or 0) + 1


def _clean_forms(forms: Any) -> dict[str, Any]:
    if forms is None:
        return {}
    if not isinstance(forms, Mapping) or not all(isinstance(k, str) and k for k in forms):
        raise ValidationFailed({"forms": ["Expected an object of form key -> form spec."]})
    try:
        size = len(json.dumps(forms, separators=(",", ":")))
    except (TypeError, ValueError, RecursionError):
        raise ValidationFailed({"forms": ["The form specs must be plain JSON."]}) from None
    if size > MAX_FORMS_BYTES:
        raise ValidationFailed({"forms": ["The form specs are too large (at most 2 MB)."]})
    return json.loads(json.dumps(forms))  # type: ignore[no-any-return]


def _clean_filename(filename: str | None, fallback: str) -> str:
    if not filename:
        return fallback
    name = re.sub(r"[^A-Za-z0-9._-]", "_", filename.replace("\\", "/").rsplit("/", 1)[-1])
    return (name or fallback)[:MAX_FILENAME_LENGTH]


def _xml_bytes(bpmn_xml: str | bytes | None) -> bytes:
    if isinstance(bpmn_xml, str):
        return xml_text_bytes(bpmn_xml)
    if isinstance(bpmn_xml, bytes | bytearray | memoryview):
        return as_utf8(bytes(bpmn_xml))
    raise ValidationFailed({"bpmn": ["Expected the BPMN model as XML text."]})


def _process_id_for(result: CheckResult, filename: str | None, current: str | None) -> str:
    """The procedure a draft belongs to: the model's process id when it can be read."""
    for candidate in (result.process_id, current):
        if candidate and _PROCESS_ID_RE.fullmatch(candidate):
            return candidate
    stem = (filename or "").rsplit("/", 1)[-1].split(".", 1)[0]
    stem = re.sub(r"[^A-Za-z0-9_]", "_", stem).strip("_")
    if not stem:
        return "draft"
    return stem[:100] if stem[:1].isalpha() else f"draft_{stem}"[:100]


def check_version(version: ProcessVersion) -> CheckResult:
    """Run the checker on a stored version (cached by content)."""
    return check(
        version.bpmn_xml.encode("utf-8"),
        version.forms or {},
        filename=version.filename or f"{version.process_id}.bpmn",
    )


def _store_check(version: ProcessVersion, result: CheckResult) -> None:
    version.check_ok = result.ok
    version.problems = [p.as_dict() for p in result.problems]
    version.spec_json = result.model.spec_json if result.model is not None else ""
    if result.name:
        version.name = result.name[:200]


def save_draft(
    db: Session,
    actor: Actor,
    *,
    bpmn_xml: str | bytes | None,
    forms: Mapping[str, Any] | None,
    filename: str | None = None,
    version_id: int | None = None,
    base_version_id: int | None = None,
) -> tuple[ProcessVersion, CheckResult]:
    """Store a draft even when the check fails (nothing typed is lost), with the verdict.

    With ``version_id`` the draft is updated in place (only while it is a draft); otherwise
    a new version is numbered after the procedure's newest and remembers the published
    version it was edited from (``base_version_id``, default: the newest published).
    """
    _require_owner(actor)
    raw = _xml_bytes(bpmn_xml)
    clean_forms = _clean_forms(forms)
    result = check(raw, clean_forms, filename=filename or "model.bpmn")
    text = raw.decode("utf-8")
    now = utcnow()
    if version_id is not None:
        version = get_version(db, version_id)
        if version.status != DRAFT:
            raise Conflict(MSG_ONLY_DRAFT_CHANGED)
        process_id = _process_id_for(result, filename, version.process_id)
        if process_id != version.process_id:
            version.process_id = process_id
            version.number = _next_number(db, process_id)
        action = "process_version:draft_updated"
    else:
        process_id = _process_id_for(result, filename, None)
        if base_version_id is not None:
            base = get_version(db, base_version_id)
            if base.process_id != process_id:
                raise ValidationFailed(
                    {"bpmn": ["The model's process id differs from the version it is based on."]}
                )
        else:
            latest = _latest_published(db, process_id)
            base_version_id = latest.id if latest is not None else None
        version = ProcessVersion(
            process_id=process_id,
            number=_next_number(db, process_id),
            name=process_id,
            status=DRAFT,
            author_id=actor.user_id,
            base_version_id=base_version_id,
            created_at=now,
            editor_ids=[],
        )
        db.add(version)
        action = "process_version:draft_created"
    version.bpmn_xml = text
    version.forms = clean_forms
    version.sha256 = sha256_of(raw, clean_forms)
    version.filename = _clean_filename(filename, version.filename or f"{process_id}.bpmn")
    version.updated_at = now
    version.updated_by_id = actor.user_id
    if actor.user_id is not None and actor.user_id not in (version.editor_ids or []):
        version.editor_ids = [*(version.editor_ids or []), actor.user_id]
    _store_check(version, result)
    try:
        db.flush()
    except IntegrityError:
        raise Conflict(MSG_SAVED_CONCURRENTLY) from None
    audit.record(
        db,
        actor,
        action,
        object_type="process_version",
        object_id=version.id,
        details={
            "process_id": version.process_id,
            "number": version.number,
            "sha256": version.sha256,
            "check_ok": result.ok,
            "problems": len(result.problems),
        },
    )
    return version, result


def _refuse_unchecked(result: CheckResult) -> None:
    if result.ok:
        return
    raise ValidationFailed(
        {"bpmn": [str(p) for p in result.problems[:50]] or ["The model could not be built."]},
        MSG_CHECK_FAILED,
    )


def submit(db: Session, actor: Actor, version_id: int) -> ProcessVersion:
    """Ask a second process owner to publish a draft that passes the checker."""
    _require_owner(actor)
    version = get_version(db, version_id)
    if version.status != DRAFT:
        raise Conflict(MSG_ONLY_DRAFT_SUBMITTED)
    result = check_version(version)
    _store_check(version, result)
    _refuse_unchecked(result)
    version.status = SUBMITTED
    version.submitted_by_id = actor.user_id
    version.submitted_at = utcnow()
    db.flush()
    audit.record(
        db,
        actor,
        "process_version:submitted",
        object_type="process_version",
        object_id=version.id,
        details={"process_id": version.process_id, "number": version.number},
    )
    return version


def _participants(version: ProcessVersion) -> set[int]:
    ids = {version.author_id, version.submitted_by_id, *(version.editor_ids or [])}
    return {i for i in ids if i is not None}


def approve(db: Session, actor: Actor, version_id: int) -> ProcessVersion:
    """Publish a submitted version: four eyes, a fresh check, and no lost update.

    Refused for whoever wrote, edited or submitted it; refused when another version of the
    procedure was published since this one was edited from its base (re-base it first).
    New cases start on the newest published version; running cases stay on theirs.
    """
    _require_owner(actor)
    version = get_version(db, version_id)
    if version.status != SUBMITTED:
        raise Conflict(MSG_ONLY_SUBMITTED_PUBLISHED)
    if actor.user_id is None or actor.user_id in _participants(version):
        # the refusal is rolled back with the request; the web layer logs it as denied
        raise Forbidden(MSG_FOUR_EYES, denied_kind="process_version", denied_id=version.id)
    latest = _latest_published(db, version.process_id)
    if latest is not None and (
        latest.number > version.number
        or (version.base_version_id is not None and latest.id != version.base_version_id)
    ):
        raise Conflict(MSG_STALE)
    result = check_version(version)
    _store_check(version, result)
    _refuse_unchecked(result)
    now = utcnow()
    version.status = PUBLISHED
    version.published_by_id = actor.user_id
    version.published_at = now
    db.flush()
    audit.record(
        db,
        actor,
        "process_version:published",
        object_type="process_version",
        object_id=version.id,
        details={
            "process_id": version.process_id,
            "number": version.number,
            "sha256": version.sha256,
            "submitted_by": version.submitted_by_id,
            "approved_by": actor.user_id,
        },
    )
    return version


def reject(db: Session, actor: Actor, version_id: int, reason: str) -> ProcessVersion:
    """Send a submitted version back with a reason; it stays readable, never publishable."""
    _require_owner(actor)
    version = get_version(db, version_id)
    text = reason.strip() if isinstance(reason, str) else ""
    if not text:
        raise ValidationFailed({"reason": ["Give a reason for the rejection."]})
    if len(text) > MAX_REASON_LENGTH:
        raise ValidationFailed({"reason": ["The reason is too long (at most 2000 characters)."]})
    if version.status != SUBMITTED:
        raise Conflict(MSG_ONLY_SUBMITTED_REJECTED)
    version.status = REJECTED
    version.rejected_by_id = actor.user_id
    version.rejected_at = utcnow()
    version.rejected_reason = text
    db.flush()
    audit.record(
        db,
        actor,
        "process_version:rejected",
        object_type="process_version",
        object_id=version.id,
        details={"process_id": version.process_id, "number": version.number},
    )
    return version
