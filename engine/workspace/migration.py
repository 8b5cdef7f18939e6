"""Moving running instances to a newer published version: planned, explicit, audited.

Running cases stay on the version they started on. A process owner may move them, but only
where nothing the instance has already touched changed: no task it started or completed
(nor that task's form) differs between its version and the target. The alignment of tasks
to the new spec is SpiffWorkflow's own (``SpiffWorkflow.bpmn.util.diff``); our XML diff
adds what the spec comparison cannot see (form fields). A dry run lists who can move.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.util.diff import diff_workflow, migrate_workflow
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import audit
from engine.actions import _lock_instance, _save_state, _sync_tasks, runtime
from engine.audit import Actor
from engine.errors import Conflict
from engine.models import Case, ProcessInstance
from engine.models.processes import PUBLISHED, ProcessVersion
from engine.processes import model_for
from engine.workflow.serializer import specs_from_json
from engine.workspace.diff import VersionDiff, diff_models
from engine.workspace.versions import _require_owner, get_version

__all__ = ["InstancePlan", "MigrationReport", "migrate", "migration_plan"]

_REGISTRY = BpmnWorkflowSerializer.configure(SPIFF_CONFIG)
MSG_TARGET_NOT_PUBLISHED = "Cases can only move to a published version."
MSG_NOT_RUNNABLE = "This version has no runnable model: the checker refused it."
#: Tasks an instance has started or completed (or that wait on it now).
_TOUCHED = (
    TaskState.COMPLETED | TaskState.READY | TaskState.STARTED | TaskState.WAITING | TaskState.ERROR
)


@dataclass(frozen=True)
class InstancePlan:
    """Whether one running instance can move to the target version, and why not."""

    instance_id: int
    case_id: int
    case_number: str
    from_version_id: int
    from_number: int
    to_version_id: int
    can_move: bool
    reasons: list[str] = field(default_factory=list)
    reasons_sv: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "case_id": self.case_id,
            "case_number": self.case_number,
            "from_version_id": self.from_version_id,
            "from_number": self.from_number,
            "to_version_id": self.to_version_id,
            "can_move": self.can_move,
            "reasons": self.reasons,
            "reasons_sv": self.reasons_sv,
        }


@dataclass(frozen=True)
class MigrationReport:
    """A dry run (``applied`` False) or the result of moving the instances that could."""

    version_id: int
    applied: bool
    plans: list[InstancePlan]
    moved: list[int]  # instance ids actually moved

    def as_dict(self) -> dict[str, Any]:
        return {
            "version_id": self.version_id,
            "applied": self.applied,
            "instances": [p.as_dict() for p in self.plans],
            "movable": sum(1 for p in self.plans if p.can_move),
            "moved": self.moved,
        }


class _Reasons:
    def __init__(self) -> None:
        self.en: list[str] = []
        self.sv: list[str] = []

    def add(self, en: str, sv: str) -> None:
        if en not in self.en:
            self.en.append(en)
            self.sv.append(sv)


def _running_instances(db: Session, target: ProcessVersion) -> list[ProcessInstance]:
    return list(
        db.execute(
            select(ProcessInstance)
            .join(ProcessVersion, ProcessVersion.id == ProcessInstance.version_id)
            .where(
                ProcessVersion.process_id == target.process_id,
                ProcessInstance.version_id != target.id,
                ProcessInstance.status == "running",
            )
            .order_by(ProcessInstance.id)
        ).scalars()
    )


def _touched(wf: Any) -> dict[str, Any]:
    """bpmn id (or spec name) -> task, for every task the instance has touched."""
    touched: dict[str, Any] = {}
    for workflow in [wf, *wf.subprocesses.values()]:
        for task in workflow.tasks.values():
            if task.has_state(_TOUCHED):
                touched[task.task_spec.bpmn_id or task.task_spec.name] = task
    return touched


def _assess(
    wf: Any, old: ProcessVersion, target: ProcessVersion, xml_diff: VersionDiff
) -> tuple[_Reasons, Any]:
    reasons = _Reasons()
    if target.status != PUBLISHED:
        reasons.add("the target version is not published", "målversionen är inte publicerad")
    if target.number <= old.number:
        reasons.add(
            "the target is not newer than the instance's version",
            "målversionen är inte nyare än ärendets version",
        )
    if xml_diff.unreadable:
        reasons.add("a diagram could not be read", "ett diagram kunde inte läsas")
    new_spec, new_deps = specs_from_json(target.spec_json)
    top_diff, sub_diffs = diff_workflow(_REGISTRY, wf, new_spec, new_deps)
    touched = _touched(wf)
    for sp_id, sub in sub_diffs.items():
        if sub is None:
            reasons.add(
                f"a running subprocess ({sp_id}) has no counterpart in the target",
                f"en pågående delprocess ({sp_id}) saknas i målversionen",
            )
    for workflow_diff in [top_diff, *(d for d in sub_diffs.values() if d is not None)]:
        for task in workflow_diff.removed:
            if task.has_state(_TOUCHED):
                name = task.task_spec.bpmn_id or task.task_spec.name
                reasons.add(
                    f"step {name} has been started or done but is removed in the target",
                    f"steget {name} är påbörjat eller klart men är borttaget i målversionen",
                )
        for task in workflow_diff.changed:
            if task.has_state(_TOUCHED):
                name = task.task_spec.bpmn_id or task.task_spec.name
                reasons.add(
                    f"step {name} has been started or done but is changed in the target",
                    f"steget {name} är påbörjat eller klart men är ändrat i målversionen",
                )
    for ident in sorted(set(touched) & xml_diff.changed_element_ids):
        reasons.add(
            f"step {ident} has been started or done but is changed in the target",
            f"steget {ident} är påbörjat eller klart men är ändrat i målversionen",
        )
    old_model = model_for(old)
    changed_forms = xml_diff.changed_form_keys
    for ident in sorted(touched):
        meta = old_model.tasks.get(ident)
        if meta is not None and meta.form_key in changed_forms:
            reasons.add(
                f"the form of step {ident} ({meta.form_key}) is changed in the target",
                f"formuläret för steget {ident} ({meta.form_key}) är ändrat i målversionen",
            )
    if old_model.start_form_key and old_model.start_form_key in changed_forms:
        reasons.add(
            f"the intake form ({old_model.start_form_key}) is changed in the target",
            f"ansökningsformuläret ({old_model.start_form_key}) är ändrat i målversionen",
        )
    return reasons, (new_spec, new_deps, top_diff, sub_diffs)


def _plan_one(
    db: Session, instance: ProcessInstance, target: ProcessVersion
) -> tuple[InstancePlan, Any, Any]:
    old = db.get(ProcessVersion, instance.version_id)
    case = db.get(Case, instance.case_id)
    assert old is not None and case is not None
    xml_diff = diff_models(
        old.bpmn_xml, old.forms or {}, target.bpmn_xml, target.forms or {}, a_id=old.id
    )
    wf = runtime.restore(old.sha256, old.spec_json, instance.state)
    try:
        reasons, prepared = _assess(wf, old, target, xml_diff)
    except Exception as exc:  # an instance the diff cannot align stays where it is
        reasons, prepared = _Reasons(), None
        reasons.add(
            f"the instance could not be compared ({type(exc).__name__})",
            f"ärendet kunde inte jämföras ({type(exc).__name__})",
        )
    plan = InstancePlan(
        instance_id=instance.id,
        case_id=case.id,
        case_number=case.number,
        from_version_id=old.id,
        from_number=old.number,
        to_version_id=target.id,
        can_move=not reasons.en,
        reasons=reasons.en,
        reasons_sv=reasons.sv,
    )
    return plan, wf, prepared


def migration_plan(db: Session, version_id: int) -> list[InstancePlan]:
    """For every running instance of the procedure on another version: can it move here?"""
    target = get_version(db, version_id)
    if not target.spec_json:
        return []
    return [_plan_one(db, inst, target)[0] for inst in _running_instances(db, target)]


def _move(wf: Any, prepared: Any) -> None:
    """Point the instance's tasks at the new spec and re-predict what lies ahead.

    SpiffWorkflow resets READY and WAITING branches to re-predict them; a waiting timer
    keeps its original due time (its spec is unchanged, or the plan would refuse the move).
    """
    new_spec, new_deps, top_diff, sub_diffs = prepared
    waiting = {
        task.id: copy.deepcopy(task.internal_data)
        for workflow in [wf, *wf.subprocesses.values()]
        for task in workflow.tasks.values()
        if task.has_state(TaskState.WAITING)
    }
    migrate_workflow(top_diff, wf, new_spec)
    for sp_id, sub in sub_diffs.items():
        subprocess = wf.subprocesses.get(sp_id)
        if sub is not None and subprocess is not None:
            migrate_workflow(sub, subprocess, new_deps[subprocess.spec.name])
    wf.subprocess_specs = new_deps
    for workflow in [wf, *wf.subprocesses.values()]:
        for task in workflow.tasks.values():
            saved = waiting.get(task.id)
            if saved is not None:
                task.internal_data = saved
    wf.do_engine_steps()


def _not_moved(plan: InstancePlan, exc: Exception) -> InstancePlan:
    kind = type(exc).__name__
    return InstancePlan(
        **{
            **plan.as_dict(),
            "can_move": False,
            "reasons": [*plan.reasons, f"the instance could not be moved safely ({kind})"],
            "reasons_sv": [*plan.reasons_sv, f"ärendet kunde inte flyttas säkert ({kind})"],
        }
    )


def migrate(db: Session, actor: Actor, version_id: int, *, apply: bool = False) -> MigrationReport:
    """Plan (dry run) or move every movable running instance to ``version_id``; audited."""
    _require_owner(actor)
    target = get_version(db, version_id)
    if apply and target.status != PUBLISHED:
        raise Conflict(MSG_TARGET_NOT_PUBLISHED)
    if not target.spec_json:
        raise Conflict(MSG_NOT_RUNNABLE)
    plans: list[InstancePlan] = []
    moved: list[int] = []
    model = model_for(target) if apply else None
    for instance in _running_instances(db, target):
        if apply:
            instance = _lock_instance(db, instance.id)
        plan, wf, prepared = _plan_one(db, instance, target)
        plans.append(plan)
        if not (apply and plan.can_move and prepared is not None):
            continue
        case = db.get(Case, instance.case_id)
        assert case is not None and model is not None
        try:
            _move(wf, prepared)
            # the moved state must load against the new version before it is stored
            runtime.restore(target.sha256, target.spec_json, runtime.dump(wf))
        except Exception as exc:  # this instance stays where it is; the others still move
            plans[-1] = _not_moved(plan, exc)
            continue
        _save_state(instance, wf)
        instance.version_id = target.id
        _sync_tasks(db, case, instance, model, runtime.ready_user_tasks(wf))
        moved.append(instance.id)
        audit.record(
            db,
            actor,
            "process_instance:migrated",
            case_id=case.id,
            object_type="process_instance",
            object_id=instance.id,
            purpose="process migration",
            details={"from_version_id": plan.from_version_id, "to_version_id": target.id},
        )
    db.flush()
    audit.record(
        db,
        actor,
        "process_version:migration_applied" if apply else "process_version:migration_planned",
        object_type="process_version",
        object_id=target.id,
        details={
            "instances": len(plans),
            "movable": sum(1 for p in plans if p.can_move),
            "moved": len(moved),
        },
    )
    return MigrationReport(target.id, apply, plans, moved)
