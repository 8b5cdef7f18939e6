"""Error types of the workflow core.

Model problems are collected as data (not raised one by one) so a publisher sees every
mistake in an uploaded diagram at once, in both languages the UI speaks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a process model, located by element id and/or line."""

    element_id: str | None
    message_en: str
    message_sv: str
    line: int | None = None
    #: a stable machine-readable rule name (``lane.unknown``), for the workspace's checker
    code: str = "model.invalid"

    def __str__(self) -> str:
        where = []
        if self.element_id:
            where.append(self.element_id)
        if self.line is not None:
            where.append(f"line {self.line}")
        prefix = f"[{', '.join(where)}] " if where else ""
        return f"{prefix}{self.message_en}"


class ModelError(Exception):
    """A process model was refused; `problems` lists every reason found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__(self._text())

    def _text(self) -> str:
        if not self.problems:
            return "invalid process model"
        lines = [f"invalid process model ({len(self.problems)} problem(s)):"]
        lines.extend(f"  - {p}" for p in self.problems)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._text()


class UnsafeExpression(ValueError):
    """An expression uses a construct outside Lotsen's sandboxed subset (or is invalid)."""


class ExpressionNameError(NameError):
    """An expression refers to a name that the task data does not define."""


class ScriptsDisabled(RuntimeError):
    """Script tasks, pre/post scripts and service tasks never run in Lotsen."""


class TaskNotReady(Exception):
    """The task does not exist, is not READY, or is not a user task."""


class InvalidTaskData(ValueError):
    """Task data that cannot be stored as JSON (or is otherwise unacceptable)."""


class WorkflowTooDeep(RuntimeError):
    """The task tree is approaching SpiffWorkflow's silent depth-1000 limit."""
