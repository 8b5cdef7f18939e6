"""Running process instances: start, restore, complete user tasks, timers, dump.

The web layer owns transactions and locking; this module owns the rules SpiffWorkflow does
not enforce itself: only READY user tasks can be completed, task data must be plain JSON,
the sandboxed script engine is always attached, and the task tree must stay well below the
depth (1000) at which SpiffWorkflow silently stops seeing tasks.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.exceptions import TaskNotFoundException
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from engine.workflow.expressions import SandboxScriptEngine
from engine.workflow.problems import InvalidTaskData, TaskNotReady, WorkflowTooDeep
from engine.workflow.serializer import SpecCache, dump_state, is_finite_json, load_state

__all__ = ["MAX_TREE_DEPTH", "ReadyTask", "WorkflowRuntime"]

MAX_TREE_DEPTH = 800
"""SpiffWorkflow's iterators stop at depth 1000 and then report a workflow as completed."""

_TIMER_EVENT_TYPES = frozenset(
    {"DurationTimerEventDefinition", "TimeDateEventDefinition", "CycleTimerEventDefinition"}
)
_INTERNAL_KEYS = frozenset({"data_objects"})


@dataclass(frozen=True)
class ReadyTask:
    """A user task waiting for a person; what inboxes and forms need without the engine."""

    task_id: str
    bpmn_id: str
    name: str
    lane: str | None


def _check_json_data(data: Mapping[str, Any], what: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidTaskData(f"{what} must be a mapping")
    plain = dict(data)
    for key in plain:
        if not isinstance(key, str) or not key or key.startswith("_"):
            raise InvalidTaskData(f"{what}: invalid key {key!r}")
    if not is_finite_json(plain):
        raise InvalidTaskData(f"{what} must be plain JSON (str, number, bool, null, list, dict)")
    return plain


START_PREFIX = "lotsen.start."


@dataclass(frozen=True)
class StartRequest:
    """A request thrown by a model to start another procedure with this payload."""

    process_id: str
    payload: dict[str, Any]


class WorkflowRuntime:
    """Stateless apart from a spec cache; safe to share as one instance per process."""

    def __init__(self, cache_size: int = 64) -> None:
        self._specs = SpecCache(cache_size)

    # ------------------------------------------------------------------ lifecycle

    def start(self, model_key: str, spec_json: str, start_data: Mapping[str, Any]) -> BpmnWorkflow:
        """Create an instance; the intake data goes on the start task so it flows onward."""
        data = _check_json_data(start_data, "start data")
        cached = self._specs.get(model_key, spec_json)
        wf = BpmnWorkflow(
            cached.spec, dict(cached.subprocess_specs), script_engine=SandboxScriptEngine()
        )
        start_task = wf.get_next_task(state=TaskState.READY)
        if start_task is None:  # pragma: no cover - every BPMN process has a start task
            raise TaskNotReady("the process has no start task")
        start_task.set_data(**data)
        wf.do_engine_steps()
        self._check_depth(wf)
        return wf

    def restore(self, model_key: str, spec_json: str, state_json: str) -> BpmnWorkflow:
        """Rebuild an instance from `dump()` output and its model version's spec."""
        cached = self._specs.get(model_key, spec_json)
        wf = load_state(cached, state_json)
        wf.script_engine = SandboxScriptEngine()
        return wf

    def dump(self, wf: BpmnWorkflow) -> str:
        """State JSON without the spec; raises InvalidTaskData before anything is stored."""
        self._check_depth(wf)
        return dump_state(wf)

    # ------------------------------------------------------------------ user tasks

    def ready_user_tasks(self, wf: BpmnWorkflow) -> list[ReadyTask]:
        """READY manual tasks, including those inside subprocesses."""
        return [
            ReadyTask(
                task_id=str(t.id),
                bpmn_id=t.task_spec.bpmn_id or t.task_spec.name,
                name=t.task_spec.bpmn_name or t.task_spec.bpmn_id or t.task_spec.name,
                lane=t.task_spec.lane,
            )
            for t in wf.get_tasks(state=TaskState.READY, manual=True)
        ]

    def _ready_user_task(self, wf: BpmnWorkflow, task_id: str) -> Task:
        try:
            tid = uuid.UUID(str(task_id))
        except ValueError:
            raise TaskNotReady(f"no task with id {str(task_id)[:64]!r}") from None
        try:
            task: Task | None = wf.get_task_from_id(tid)
        except TaskNotFoundException:
            task = None
        if task is None:
            raise TaskNotReady(f"no task with id {tid}")
        if not task.task_spec.manual:
            raise TaskNotReady(f"task {tid} is not a user task")
        if task.state != TaskState.READY:
            raise TaskNotReady(f"task {tid} is not ready (state {TaskState.get_name(task.state)})")
        return task

    def complete_user_task(self, wf: BpmnWorkflow, task_id: str, data: Mapping[str, Any]) -> None:
        """Set exactly the given data on a READY user task, run it and advance the engine."""
        task = self._ready_user_task(wf, task_id)
        plain = _check_json_data(data, "task data")
        if plain:
            task.set_data(**plain)
        task.run()
        wf.do_engine_steps()
        self._check_depth(wf)

    def task_data(self, wf: BpmnWorkflow, task_id: str) -> dict[str, Any]:
        """Data visible at a READY user task (for prefilling its form)."""
        task = self._ready_user_task(wf, task_id)
        return {k: v for k, v in task.data.items() if k not in _INTERNAL_KEYS}

    def workflow_data(self, wf: BpmnWorkflow) -> dict[str, Any]:
        """The instance's current data: the final data once completed, else the latest
        completed task's data merged over the workflow data."""
        data: dict[str, Any] = dict(wf.data)
        if not wf.is_completed() and wf.last_task is not None:
            data.update(wf.last_task.data)
        return {k: v for k, v in data.items() if k not in _INTERNAL_KEYS}

    def completed_user_tasks(self, wf: BpmnWorkflow) -> list[str]:
        """BPMN ids of completed user tasks, oldest first (for scenario 'visited' checks)."""
        done = [
            t
            for t in wf.get_tasks(state=TaskState.COMPLETED, manual=True)
            if t.task_spec.bpmn_id is not None
        ]
        done.sort(key=lambda t: t.last_state_change)
        return [t.task_spec.bpmn_id for t in done]

    def take_start_requests(self, wf: BpmnWorkflow) -> list[StartRequest]:
        """Messages thrown to start a linked procedure (``lotsen.start.<id>``), consumed.

        Nothing inside the workflow catches them, so SpiffWorkflow leaves them for the
        host; reading them clears the list, so each is acted on once.
        """
        requests = []
        for event in wf.get_events():
            name = getattr(event.event_definition, "name", "") or ""
            if name.startswith(START_PREFIX) and isinstance(event.payload, dict):
                requests.append(StartRequest(name[len(START_PREFIX) :], dict(event.payload)))
        return requests

    def is_completed(self, wf: BpmnWorkflow) -> bool:
        """True once nothing is left to do (guarded against the depth-1000 false positive)."""
        self._check_depth(wf)
        return bool(wf.is_completed())

    # ------------------------------------------------------------------ timers

    def next_timer_due(self, wf: BpmnWorkflow) -> datetime | None:
        """Earliest due time of a waiting timer (UTC), for the scheduler's index column."""
        due: list[datetime] = []
        for event in wf.waiting_events():
            if event.event_type not in _TIMER_EVENT_TYPES:
                continue
            value = event.value
            if isinstance(value, dict):
                value = value.get("next") if value.get("cycles", 1) != 0 else None
            if not isinstance(value, str):
                continue
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                continue
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            due.append(moment.astimezone(UTC))
        return min(due) if due else None

    def fire_due_timers(self, wf: BpmnWorkflow) -> None:
        """Fire timers whose time has passed and run whatever they make ready."""
        wf.refresh_timers()
        wf.do_engine_steps()
        self._check_depth(wf)

    # ------------------------------------------------------------------ guards

    @staticmethod
    def tree_depth(wf: BpmnWorkflow) -> int:
        """Deepest task in any (sub)workflow tree, measured without SpiffWorkflow's cap."""
        deepest = 0
        workflows = [wf, *wf.subprocesses.values()]
        for w in workflows:
            depth_of: dict[Any, int] = {}
            for task in w.tasks.values():
                chain: list[Any] = []
                node = task
                while node is not None and node.id not in depth_of:
                    chain.append(node)
                    node = node.parent
                base = depth_of[node.id] if node is not None else -1
                for item in reversed(chain):
                    base += 1
                    depth_of[item.id] = base
            if depth_of:
                deepest = max(deepest, max(depth_of.values()))
        return deepest

    def _check_depth(self, wf: BpmnWorkflow) -> None:
        if len(wf.tasks) < MAX_TREE_DEPTH:
            return  # a tree cannot be deeper than it has tasks
        depth = self.tree_depth(wf)
        if depth > MAX_TREE_DEPTH:
            raise WorkflowTooDeep(
                f"task tree depth {depth} exceeds {MAX_TREE_DEPTH}; the model loops without a "
                "bound (SpiffWorkflow stops seeing tasks at depth 1000)"
            )
