"""Which task deadlines are statutory (set by law) rather than local choices.

Reminders about a statutory deadline go out even to users who opted out of reminders. The
process models did not say which deadlines are statutory (a boundary timer is used for local
follow-ups too, e.g. the housing company's 30 days), so it is declared as data the process
owner controls, in this order:

1. the user task's property ``deadlineStatutory`` (``true``/``false``) in the BPMN model, so a
   process owner can mark it when publishing a model;
2. otherwise ``bpmn/statutory_deadlines.toml``: per process id, the task ids whose deadline
   the law sets, each with its legal source (domain.md §4.4);
3. otherwise local (opt-outs apply).
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from engine.workflow.specs import ProcessModel

CATALOGUE = "statutory_deadlines.toml"
PROPERTY = "deadlineStatutory"


@lru_cache(maxsize=8)
def _catalogue(path: Path, mtime_ns: int) -> dict[str, frozenset[str]]:
    with path.open("rb") as handle:
        data: dict[str, Any] = tomllib.load(handle)
    result: dict[str, frozenset[str]] = {}
    for process_id, table in data.items():
        if isinstance(table, dict):
            result[str(process_id)] = frozenset(
                str(task_id) for task_id, entry in table.items() if isinstance(entry, dict)
            )
    return result


def catalogue(bpmn_dir: Path | None) -> dict[str, frozenset[str]]:
    """{process id: task ids with a statutory deadline} from the catalogue file (if any)."""
    if bpmn_dir is None:
        return {}
    path = bpmn_dir / CATALOGUE
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return {}
    return _catalogue(path, mtime)


def is_statutory(model: ProcessModel, bpmn_id: str, bpmn_dir: Path | None) -> bool:
    """True when the deadline of task ``bpmn_id`` of ``model`` is set by law."""
    meta = model.tasks.get(bpmn_id)
    declared = meta.properties.get(PROPERTY) if meta is not None else None
    if isinstance(declared, str) and declared.strip():
        return declared.strip().lower() == "true"
    return bpmn_id in catalogue(bpmn_dir).get(model.process_id, frozenset())
