"""WorkflowRuntime: round trips at every step, spec-free state, task guards, timers, depth."""

from __future__ import annotations

import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs.event_definitions import timer as timer_module
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskState

from engine.workflow import runtime as runtime_module
from engine.workflow.problems import InvalidTaskData, TaskNotReady, WorkflowTooDeep
from engine.workflow.runtime import ReadyTask, WorkflowRuntime
from engine.workflow.specs import ProcessModel, load_process_model


def model_of(kit_model: Any) -> ProcessModel:
    return load_process_model(kit_model.xml())


def snapshot(rt: WorkflowRuntime, wf: BpmnWorkflow) -> dict[str, Any]:
    ready = rt.ready_user_tasks(wf)
    return {
        "ready": ready,
        "data": {t.task_id: rt.task_data(wf, t.task_id) for t in ready},
        "workflow": rt.workflow_data(wf),
        "done": rt.completed_user_tasks(wf),
        "completed": rt.is_completed(wf),
        "timer": rt.next_timer_due(wf),
    }


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal views; timers are computed when first reached, so two copies advanced
    separately may differ by microseconds."""
    ta, tb = a.pop("timer"), b.pop("timer")
    if (ta is None) != (tb is None):
        return False
    if ta is not None and abs((ta - tb).total_seconds()) > 2:
        return False
    return a == b


def drive(
    rt: WorkflowRuntime, model: ProcessModel, key: str, steps: list[dict[str, Any]]
) -> BpmnWorkflow:
    """Complete the first ready task with each step's data, checking a dump/restore
    round trip before and after every step gives exactly the same view."""
    wf = rt.start(key, model.spec_json, {"intake": "x"})
    for data in [*steps, None]:
        restored = rt.restore(key, model.spec_json, rt.dump(wf))
        assert same(snapshot(rt, restored), snapshot(rt, wf))
        if data is None:
            break
        task = rt.ready_user_tasks(wf)[0]
        rt.complete_user_task(wf, task.task_id, data)
        # continue on the restored copy half of the time, so restored objects are exercised
        rt.complete_user_task(restored, task.task_id, data)
        assert same(snapshot(rt, restored), snapshot(rt, wf))
        wf = restored
    return wf


def test_linear_round_trip_every_step(kit: SimpleNamespace) -> None:
    rt = WorkflowRuntime()
    model = model_of(kit.linear(10))
    steps = [{f"field_{i}": i, "note": f"steg {i}"} for i in range(1, 11)]
    wf = drive(rt, model, "linear10", steps)
    assert rt.is_completed(wf)
    assert rt.completed_user_tasks(wf) == [f"task_do_{i}" for i in range(1, 11)]
    data = rt.workflow_data(wf)
    assert data["intake"] == "x" and data["field_10"] == 10 and data["note"] == "steg 10"


def test_start_data_reaches_first_task(kit: SimpleNamespace) -> None:
    rt = WorkflowRuntime()
    model = model_of(kit.linear(2))
    wf = rt.start("lin2", model.spec_json, {"referral_source": "police", "n": [1, 2]})
    (task,) = rt.ready_user_tasks(wf)
    assert task == ReadyTask(task.task_id, "task_do_1", "A1 Steg 1", "caseworker")
    assert rt.task_data(wf, task.task_id) == {"referral_source": "police", "n": [1, 2]}


def test_gateway_branches_and_round_trip(kit: SimpleNamespace) -> None:
    rt = WorkflowRuntime()
    model = model_of(kit.branching())
    big = drive(rt, model, "branch", [{"amount": 500}, {"approved": True}])
    assert rt.completed_user_tasks(big) == ["task_register", "task_approve"]
    small = drive(rt, model, "branch", [{"amount": 5}, {"closed": True}])
    assert rt.completed_user_tasks(small) == ["task_register", "task_close"]
    assert rt.workflow_data(small)["closed"] is True


def test_state_has_no_spec_and_is_small(kit: SimpleNamespace) -> None:
    rt = WorkflowRuntime()
    model = model_of(kit.linear(10))
    wf = rt.start("lin10", model.spec_json, {})
    for i in range(5):
        rt.complete_user_task(wf, rt.ready_user_tasks(wf)[0].task_id, {"a": i, "b": "x", "c": True})
    state = rt.dump(wf)
    dct = json.loads(state)
    assert "spec" not in dct and "subprocess_specs" not in dct
    assert dct["serializer_version"] == "1.5"
    full = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG)).serialize_json(wf)
    assert len(state) < 0.6 * len(full), (len(state), len(full))


def test_spec_objects_are_shared_and_safe(kit: SimpleNamespace) -> None:
    """Restores of one model version share spec objects; interleaving instances that share
    them gives the same results as fully independent ones (specs hold no instance state)."""
    rt = WorkflowRuntime()
    model = model_of(kit.branching())
    a = rt.start("shared", model.spec_json, {})
    b = rt.start("shared", model.spec_json, {})
    assert a.spec is b.spec
    ra = rt.restore("shared", model.spec_json, rt.dump(a))
    rb = rt.restore("shared", model.spec_json, rt.dump(b))
    assert ra.spec is rb.spec is a.spec

    # Interleave: a goes the approval way, b the default way.
    rt.complete_user_task(ra, rt.ready_user_tasks(ra)[0].task_id, {"amount": 500})
    rt.complete_user_task(rb, rt.ready_user_tasks(rb)[0].task_id, {"amount": 1})
    assert [t.bpmn_id for t in rt.ready_user_tasks(ra)] == ["task_approve"]
    assert [t.bpmn_id for t in rt.ready_user_tasks(rb)] == ["task_close"]

    # The same history on a runtime with its own (fresh) spec objects gives the same state.
    fresh = WorkflowRuntime()
    fa = fresh.restore("other", model.spec_json, rt.dump(a))
    assert fa.spec is not a.spec
    fresh.complete_user_task(fa, rt.ready_user_tasks(fa)[0].task_id, {"amount": 500})
    assert same(snapshot(fresh, fa), snapshot(rt, ra))


def test_task_not_ready_cases(kit: SimpleNamespace) -> None:
    rt = WorkflowRuntime()
    model = model_of(kit.linear(3))
    wf = rt.start("lin3", model.spec_json, {})
    first = rt.ready_user_tasks(wf)[0].task_id
    with pytest.raises(TaskNotReady):
        rt.complete_user_task(wf, "not-a-uuid", {})
    with pytest.raises(TaskNotReady):
        rt.complete_user_task(wf, "00000000-0000-0000-0000-000000000000", {})
    start_task = wf.get_tasks(state=TaskState.COMPLETED)[0]
    with pytest.raises(TaskNotReady, match="not a user task"):
        rt.complete_user_task(wf, str(start_task.id), {})
    future = [t for t in wf.get_tasks(manual=True) if t.state != TaskState.READY]
    assert future
    with pytest.raises(TaskNotReady, match="not ready"):
        rt.complete_user_task(wf, str(future[0].id), {})
    rt.complete_user_task(wf, first, {"x": 1})
    with pytest.raises(TaskNotReady, match="not ready"):
        rt.complete_user_task(wf, first, {"x": 2})
    with pytest.raises(TaskNotReady):
        rt.task_data(wf, first)


@pytest.mark.parametrize(
    "bad",
    [
        {"x": {1, 2}},
        {"x": b"bytes"},
        {"x": float("nan")},
        {"x": float("inf")},
        {"x": object()},
        {"x": datetime.now(UTC)},
        {"x": {"nested": [1, {2: "int key"}]}},
        {1: "int key"},
        {"_private": 1},
    ],
)
def test_invalid_task_data(kit: SimpleNamespace, bad: dict[Any, Any]) -> None:
    rt = WorkflowRuntime()
    model = model_of(kit.linear(2))
    wf = rt.start("lin2", model.spec_json, {})
    task_id = rt.ready_user_tasks(wf)[0].task_id
    with pytest.raises(InvalidTaskData):
        rt.complete_user_task(wf, task_id, bad)
    # nothing happened: the task is still ready
    assert rt.ready_user_tasks(wf)[0].task_id == task_id
    with pytest.raises(InvalidTaskData):
        rt.start("lin2", model.spec_json, bad)


def test_dump_refuses_non_json_data_set_behind_our_back(kit: SimpleNamespace) -> None:
    rt = WorkflowRuntime()
    model = model_of(kit.linear(2))
    wf = rt.start("lin2", model.spec_json, {})
    task = wf.get_tasks(state=TaskState.READY, manual=True)[0]
    task.data["blob"] = b"\x00"
    with pytest.raises(InvalidTaskData):
        rt.dump(wf)


def test_complete_sets_only_given_data(kit: SimpleNamespace) -> None:
    rt = WorkflowRuntime()
    model = model_of(kit.linear(2))
    wf = rt.start("lin2", model.spec_json, {"a": 1})
    rt.complete_user_task(wf, rt.ready_user_tasks(wf)[0].task_id, {"b": 2})
    nxt = rt.ready_user_tasks(wf)[0]
    assert rt.task_data(wf, nxt.task_id) == {"a": 1, "b": 2}
    rt.complete_user_task(wf, nxt.task_id, {})
    assert rt.workflow_data(wf) == {"a": 1, "b": 2}


class _Clock:
    offset = timedelta(0)


def _fake_datetime() -> type[datetime]:
    class Shifted(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.now(tz) + _Clock.offset

    return Shifted


def test_timer_due_and_fire(kit: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    rt = WorkflowRuntime()
    model = model_of(kit.branching())
    wf = rt.start("timer", model.spec_json, {})
    assert rt.next_timer_due(wf) is None
    rt.complete_user_task(wf, rt.ready_user_tasks(wf)[0].task_id, {"amount": 500})
    due = rt.next_timer_due(wf)
    assert due is not None and due.tzinfo is not None
    expected = datetime.now(UTC) + timedelta(days=14)
    assert abs((due - expected).total_seconds()) < 60

    # survives a round trip
    wf = rt.restore("timer", model.spec_json, rt.dump(wf))
    assert rt.next_timer_due(wf) == due
    rt.fire_due_timers(wf)  # not due yet: nothing changes
    assert [t.bpmn_id for t in rt.ready_user_tasks(wf)] == ["task_approve"]

    monkeypatch.setattr(timer_module, "datetime", _fake_datetime())
    monkeypatch.setattr(_Clock, "offset", timedelta(days=15))
    rt.fire_due_timers(wf)
    assert [t.bpmn_id for t in rt.ready_user_tasks(wf)] == ["task_escalate"]
    assert rt.next_timer_due(wf) is None


def loop_model(kit: SimpleNamespace) -> Any:
    """task_review -> gw --again--> task_review (a loop the model does not bound)."""
    m = kit.Model()
    m.node("start", kit.start_event())
    m.node("task_review", kit.user_task("task_review", "R"))
    m.node("gw", kit.gateway("gw", default="f_out"))
    m.node("end", kit.end_event())
    m.flow("f1", "start", "task_review")
    m.flow("f2", "task_review", "gw")
    m.flow("f_again", "gw", "task_review", "again")
    m.flow("f_out", "gw", "end")
    return m


def test_depth_guard(kit: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime_module, "MAX_TREE_DEPTH", 12)
    rt = WorkflowRuntime()
    model = model_of(loop_model(kit))
    wf = rt.start("loop", model.spec_json, {})
    with pytest.raises(WorkflowTooDeep, match="depth"):
        for _ in range(10):
            rt.complete_user_task(wf, rt.ready_user_tasks(wf)[0].task_id, {"again": True})
    assert WorkflowRuntime.tree_depth(wf) > 12


def test_tree_depth_of_loop_grows(kit: SimpleNamespace) -> None:
    rt = WorkflowRuntime()
    model = model_of(loop_model(kit))
    wf = rt.start("loop", model.spec_json, {})
    before = WorkflowRuntime.tree_depth(wf)
    for _ in range(3):
        rt.complete_user_task(wf, rt.ready_user_tasks(wf)[0].task_id, {"again": True})
    assert WorkflowRuntime.tree_depth(wf) >= before + 6
    rt.complete_user_task(wf, rt.ready_user_tasks(wf)[0].task_id, {"again": False})
    assert rt.is_completed(wf)
    assert rt.completed_user_tasks(wf) == ["task_review"] * 4


def test_restore_is_fast(kit: SimpleNamespace) -> None:
    """Loose guard (the lead's benchmarks give the real figures): restore of a 10-task
    instance from cached spec objects stays in the low milliseconds."""
    rt = WorkflowRuntime()
    model = model_of(kit.linear(10))
    wf = rt.start("lin10", model.spec_json, {})
    for i in range(5):
        rt.complete_user_task(wf, rt.ready_user_tasks(wf)[0].task_id, {"a": i})
    state = rt.dump(wf)
    rt.restore("lin10", model.spec_json, state)
    times = []
    for _ in range(50):
        t0 = time.perf_counter()
        rt.restore("lin10", model.spec_json, state)
        times.append(time.perf_counter() - t0)
    assert statistics.median(times) < 0.02
