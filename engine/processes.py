"""Published process versions: read procedure folders, publish, and load cached models."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import audit
from engine.audit import Actor
from engine.db import utcnow
from engine.errors import NotFound
from engine.models import ProcessVersion
from engine.models.processes import PUBLISHED
from engine.roles import lane_role_ids
from engine.workflow.problems import ModelError, Problem
from engine.workflow.specs import ProcessModel, load_process_model


@dataclass(frozen=True)
class ProcedureFiles:
    """A procedure as it lies in ``bpmn/<process_id>/``."""

    process_id: str
    bpmn_xml: bytes
    forms: dict[str, Any]


def read_procedure_folder(folder: Path) -> ProcedureFiles:
    """Read ``<id>.bpmn`` and ``forms/*.json`` from one procedure folder."""
    process_id = folder.name
    bpmn_path = folder / f"{process_id}.bpmn"
    forms = {
        p.stem: json.loads(p.read_text(encoding="utf-8"))
        for p in sorted((folder / "forms").glob("*.json"))
    }
    return ProcedureFiles(process_id, bpmn_path.read_bytes(), forms)


def procedure_folders(bpmn_dir: Path) -> list[Path]:
    """Every folder under ``bpmn/`` that holds a procedure model."""
    return sorted(p for p in bpmn_dir.iterdir() if p.is_dir() and (p / f"{p.name}.bpmn").exists())


def sha256_of(bpmn_xml: bytes, forms: Mapping[str, Any]) -> str:
    """The content hash of a version: the model and its forms together."""
    h = hashlib.sha256(bpmn_xml)
    h.update(json.dumps(forms, sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()


@lru_cache(maxsize=64)
def _model_from_xml(sha: str, bpmn_xml: str, process_id: str) -> ProcessModel:
    return load_process_model(
        bpmn_xml.encode("utf-8"),
        f"{process_id}.bpmn",
        process_id=process_id,
        known_roles=lane_role_ids(),
    )


def model_for(version: ProcessVersion) -> ProcessModel:
    """The parsed model of a stored version (parsed once per process, then cached)."""
    return _model_from_xml(version.sha256, version.bpmn_xml, version.process_id)


def check_forms_present(model: ProcessModel, forms: Mapping[str, Any]) -> None:
    """Every form key the model names must have a form spec."""
    missing = [
        Problem(
            element_id=None,
            message_en=f"form '{key}' is used by the model but missing",
            message_sv=f"formuläret '{key}' används i modellen men saknas",
        )
        for key in sorted(model.form_keys)
        if key not in forms
    ]
    if missing:
        raise ModelError(missing)


def latest_published(session: Session, process_id: str) -> ProcessVersion:
    """The newest published version of a procedure: new cases start on it."""
    version = session.execute(
        select(ProcessVersion)
        .where(ProcessVersion.process_id == process_id, ProcessVersion.status == PUBLISHED)
        .order_by(ProcessVersion.number.desc())
        .limit(1)
    ).scalar_one_or_none()
    if version is None:
        raise NotFound(f"no published version of {process_id}")
    return version


def published_procedures(session: Session) -> list[ProcessVersion]:
    """The newest published version of every procedure."""
    newest = (
        select(ProcessVersion.process_id, func.max(ProcessVersion.number).label("n"))
        .where(ProcessVersion.status == PUBLISHED)
        .group_by(ProcessVersion.process_id)
        .subquery()
    )
    rows = session.execute(
        select(ProcessVersion)
        .join(
            newest,
            (ProcessVersion.process_id == newest.c.process_id)
            & (ProcessVersion.number == newest.c.n),
        )
        .order_by(ProcessVersion.process_id)
    ).scalars()
    return list(rows)


def publish(session: Session, actor: Actor, files: ProcedureFiles) -> tuple[ProcessVersion, bool]:
    """Publish a procedure unless the same content is already its newest published version.

    The path of ``lotsen init`` (the bundled ``bpmn/`` folders, a deployment by the operator)
    with the structural checks of ``load_process_model``; process owners publish through
    ``engine.workspace`` (four eyes and its full checker, which the bundled folders also pass).
    Returns the version and whether it is new. Raises ModelError listing every problem.
    """
    sha = sha256_of(files.bpmn_xml, files.forms)
    existing = session.execute(
        select(ProcessVersion)
        .where(ProcessVersion.process_id == files.process_id, ProcessVersion.status == PUBLISHED)
        .order_by(ProcessVersion.number.desc())
        .limit(1)
    ).scalar_one_or_none()
    if existing is not None and existing.sha256 == sha:
        return existing, False
    model = load_process_model(
        files.bpmn_xml,
        f"{files.process_id}.bpmn",
        process_id=files.process_id,
        known_roles=lane_role_ids(),
    )
    check_forms_present(model, files.forms)
    newest_number = session.execute(
        select(func.max(ProcessVersion.number)).where(ProcessVersion.process_id == files.process_id)
    ).scalar_one_or_none()
    now = utcnow()
    version = ProcessVersion(
        process_id=files.process_id,
        number=int(newest_number or 0) + 1,
        name=model.name,
        status=PUBLISHED,
        bpmn_xml=files.bpmn_xml.decode("utf-8"),
        forms=dict(files.forms),
        spec_json=model.spec_json,
        sha256=sha,
        published_by_id=actor.user_id,
        published_at=now,
        filename=f"{files.process_id}.bpmn",
        author_id=actor.user_id,
        editor_ids=[],
        updated_at=now,
        check_ok=True,
        problems=[],
    )
    session.add(version)
    session.flush()
    audit.record(
        session,
        actor,
        "process_version:published",
        object_type="process_version",
        object_id=version.id,
        details={"process_id": version.process_id, "number": version.number, "sha256": sha},
    )
    return version, True


def declared_keys(form_spec: Mapping[str, Any]) -> list[str]:
    """The data keys a form spec declares (only these may reach task data)."""
    return [
        str(c["key"])
        for c in form_spec.get("components", [])
        if isinstance(c, dict) and c.get("key")
    ]


def option_label(form_spec: Mapping[str, Any], key: str, value: str, lang: str) -> str:
    """The label of an enum value in a form spec (the value itself when not declared)."""
    for component in form_spec.get("components", []):
        if not isinstance(component, dict) or component.get("key") != key:
            continue
        for option in component.get("values", []):
            if isinstance(option, dict) and option.get("value") == value:
                text = option.get("label")
                if isinstance(text, dict):
                    return str(text.get(lang) or text.get("sv") or value)
                return str(text or value)
    return value


def subject_field_map(form_spec: Mapping[str, Any]) -> dict[str, str]:
    """{form key: subject field} for the intake fields that fill the case subject's record."""
    return {
        str(c["key"]): str(c["subjectField"])
        for c in form_spec.get("components", [])
        if isinstance(c, dict) and c.get("key") and c.get("subjectField")
    }


def empty_values(form_spec: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared key with its empty value (False, [], or None), so conditions never
    meet a missing name even when a linked start sends only some keys."""
    empty: dict[str, Any] = {}
    for c in form_spec.get("components", []):
        if not isinstance(c, dict) or not c.get("key"):
            continue
        kind = c.get("type")
        empty[str(c["key"])] = False if kind == "checkbox" else [] if kind == "checklist" else None
    return empty
