"""Workflow (de)serialization that keeps the process definition out of instance state.

SpiffWorkflow embeds the whole spec in every serialization (about half the bytes). Lotsen
stores the spec once per model version (`ProcessModel.spec_json`) and each instance stores
only its task tree and data. Restoring reuses the cached spec *objects* of a model version:
BPMN task specs hold no per-instance state (checked against the 3.2 source: no spec
attribute is assigned at run time), so sharing them across workflows is safe, and it skips
the most expensive part of a restore.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG

from engine.workflow.problems import InvalidTaskData

__all__ = [
    "SERIALIZER_VERSION",
    "SpecCache",
    "dump_state",
    "load_state",
    "spec_to_json",
    "specs_from_json",
]


class _InstanceOnlyWorkflowConverter(BpmnWorkflowConverter):  # type: ignore[misc]
    """Like the stock converter, but never converts the (shared, stored-once) specs."""

    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        dct: dict[str, Any] = super(BpmnWorkflowConverter, self).to_dict(workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct


def _make_serializer() -> BpmnWorkflowSerializer:
    config = dict(SPIFF_CONFIG)
    config[BpmnWorkflow] = _InstanceOnlyWorkflowConverter
    return BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(config))


_SERIALIZER = _make_serializer()
SERIALIZER_VERSION: str = _SERIALIZER.VERSION
_VERSION_KEY: str = BpmnWorkflowSerializer.VERSION_KEY


def _json_default(obj: object) -> Any:
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=repr)
    raise TypeError(f"value of type {type(obj).__name__} cannot be stored")


def _dumps(obj: Any) -> str:
    try:
        return json.dumps(
            obj, default=_json_default, allow_nan=False, ensure_ascii=False, separators=(",", ":")
        )
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidTaskData(f"workflow data is not JSON-serializable: {exc}") from None


def spec_to_json(spec: Any, subprocess_specs: Mapping[str, Any]) -> str:
    """The stored-once form of a process definition (top spec + all subprocess specs)."""
    return _dumps(
        {
            _VERSION_KEY: SERIALIZER_VERSION,
            "spec": _SERIALIZER.to_dict(spec),
            "subprocess_specs": {k: _SERIALIZER.to_dict(v) for k, v in subprocess_specs.items()},
        }
    )


def specs_from_json(spec_json: str) -> tuple[Any, dict[str, Any]]:
    """Rebuild spec objects from `spec_to_json` output."""
    dct = json.loads(spec_json)
    spec = _SERIALIZER.from_dict(dct["spec"])
    subs = {k: _SERIALIZER.from_dict(v) for k, v in dct.get("subprocess_specs", {}).items()}
    return spec, subs


class _CachedSpec:
    __slots__ = ("raw", "spec", "subprocess_specs", "version")

    def __init__(self, spec_json: str) -> None:
        self.raw: dict[str, Any] = json.loads(spec_json)
        self.version: str = self.raw.get(_VERSION_KEY, SERIALIZER_VERSION)
        self.spec, self.subprocess_specs = specs_from_json(spec_json)


class SpecCache:
    """LRU of restored specs per model key (e.g. the model version's sha256)."""

    def __init__(self, maxsize: int = 64) -> None:
        self._maxsize = maxsize
        self._items: OrderedDict[str, _CachedSpec] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model_key: str, spec_json: str) -> _CachedSpec:
        with self._lock:
            hit = self._items.get(model_key)
            if hit is not None:
                self._items.move_to_end(model_key)
                return hit
        entry = _CachedSpec(spec_json)  # built outside the lock; a duplicate build is harmless
        with self._lock:
            self._items[model_key] = entry
            self._items.move_to_end(model_key)
            while len(self._items) > self._maxsize:
                self._items.popitem(last=False)
        return entry

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def dump_state(wf: BpmnWorkflow) -> str:
    """Instance state as JSON: everything but the specs, plus the serializer version."""
    dct = _SERIALIZER.to_dict(wf)
    dct[_VERSION_KEY] = SERIALIZER_VERSION
    return _dumps(dct)


def load_state(cached: _CachedSpec, state_json: str) -> BpmnWorkflow:
    """Restore a workflow from `dump_state` output and the model version's cached spec."""
    dct = json.loads(state_json)
    if not isinstance(dct, dict) or "tasks" not in dct:
        raise ValueError("not a workflow state")
    version = dct.get(_VERSION_KEY, SERIALIZER_VERSION)
    if version == SERIALIZER_VERSION and cached.version == SERIALIZER_VERSION:
        # Fast path: the registry passes non-dict values through unchanged, so the
        # already-built spec objects can be handed to the stock converter directly.
        dct.pop(_VERSION_KEY, None)
        dct["spec"] = cached.spec
        dct["subprocess_specs"] = dict(cached.subprocess_specs)
        wf: BpmnWorkflow = _SERIALIZER.from_dict(dct)
        return wf
    # An older format: migrations work on the full dictionary, specs included.
    full = json.loads(json.dumps(cached.raw))
    dct["spec"] = full["spec"]
    dct["subprocess_specs"] = full.get("subprocess_specs", {})
    dct[_VERSION_KEY] = version
    _SERIALIZER.migrate(dct)
    migrated: BpmnWorkflow = _SERIALIZER.from_dict(dct)
    return migrated


def is_finite_json(value: Any) -> bool:
    """True if `value` is plain JSON data (what task data must be)."""
    stack: list[Any] = [value]
    seen = 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > 1_000_000:
            return False
        if item is None or isinstance(item, bool | int | str):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return False
            continue
        if isinstance(item, list | tuple):
            stack.extend(item)
            continue
        if isinstance(item, dict):
            if not all(isinstance(k, str) for k in item):
                return False
            stack.extend(item.values())
            continue
        return False
    return True
