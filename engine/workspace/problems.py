"""What the checker returns: problems located by element id, in Swedish and English."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.workflow.specs import ProcessModel

__all__ = ["CheckResult", "Problem"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a version, in both languages the UI speaks."""

    element_id: str | None
    code: str
    message_en: str
    message_sv: str
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "element_id": self.element_id,
            "code": self.code,
            "message_en": self.message_en,
            "message_sv": self.message_sv,
            "line": self.line,
        }

    def __str__(self) -> str:
        where = f"[{self.element_id}] " if self.element_id else ""
        return f"{where}{self.code}: {self.message_en}"


@dataclass(frozen=True)
class CheckResult:
    """The checker's verdict: ``ok`` when there is nothing to fix."""

    problems: list[Problem]
    process_id: str | None = None
    name: str | None = None
    #: the vetted model (None unless SpiffWorkflow built the spec); never serialized
    model: ProcessModel | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return not self.problems and self.model is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "process_id": self.process_id,
            "name": self.name,
            "problems": [p.as_dict() for p in self.problems],
        }
