"""The checker's rules that need more than one element: timers, decisions, size.

Each function takes the parsed ``bpmn:process`` element and returns problems; none raises
for a bad model. Kept apart from ``checker`` so each rule is small and testable on its own.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from lxml import etree

from engine.workflow.deadlines import parse_duration
from engine.workflow.specs import BPMN_NS, SPIFF_NS
from engine.workspace.problems import Problem

__all__ = [
    "BPMN_NS",
    "NS",
    "SPIFF_NS",
    "decision_problems",
    "form_keys_used",
    "line_of",
    "local",
    "pick_process",
    "problem",
    "processes",
    "properties",
    "size_problems",
    "timer_problems",
    "user_tasks",
]

NS = {"bpmn": BPMN_NS, "spiffworkflow": SPIFF_NS}
MAX_ELEMENTS = 20_000
MAX_DEPTH = 60
MAX_TIMER_REPETITIONS = 1000
_TASKS = ".//bpmn:userTask | .//bpmn:manualTask"


def problem(
    element_id: str | None, code: str, en: str, sv: str, line: int | None = None
) -> Problem:
    return Problem(element_id, code, en, sv, line)


def line_of(node: etree._Element | None) -> int | None:
    line = getattr(node, "sourceline", None)
    return line if isinstance(line, int) else None


def local(node: etree._Element) -> str:
    return str(etree.QName(node).localname)


def properties(node: etree._Element) -> dict[str, str]:
    """The ``spiffworkflow:property`` list of an element, by name."""
    props: dict[str, str] = {}
    for prop in node.xpath(
        "./bpmn:extensionElements/spiffworkflow:properties/spiffworkflow:property",
        namespaces=NS,
    ):
        name = prop.get("name")
        if name:
            props[str(name)] = str(prop.get("value", ""))
    return props


def user_tasks(scope: etree._Element) -> Iterator[tuple[etree._Element, dict[str, str]]]:
    for task in scope.xpath(_TASKS, namespaces=NS):
        yield task, properties(task)


def processes(root: etree._Element) -> list[etree._Element]:
    if local(root) == "process" and etree.QName(root).namespace == BPMN_NS:
        return [root]
    found: list[etree._Element] = root.xpath(".//bpmn:process", namespaces=NS)
    return found


def pick_process(root: etree._Element, process_id: str | None) -> etree._Element | None:
    """The process a check is about: the named one, else the only executable one."""
    every = processes(root)
    if process_id:
        return next((p for p in every if p.get("id") == process_id), None)
    executable = [p for p in every if p.get("isExecutable", "true") == "true"]
    if len(executable) == 1:
        return executable[0]
    return every[0] if len(every) == 1 else None


def form_keys_used(process: etree._Element) -> list[tuple[str, str | None]]:
    """(form key, element id) of every user task and start event that names a form."""
    used: list[tuple[str, str | None]] = []
    for node in process.xpath(_TASKS + " | .//bpmn:startEvent", namespaces=NS):
        key = properties(node).get("formKey", "").strip()
        if key:
            used.append((key, node.get("id")))
    return used


# --------------------------------------------------------------------------- size


def size_problems(root: etree._Element) -> list[Problem]:
    """Caps from security.md §3.3: element count and nesting depth."""
    count = 0
    stack: list[tuple[etree._Element, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_ELEMENTS:
            return [
                problem(
                    None,
                    "xml.too_many_elements",
                    f"the file has more than {MAX_ELEMENTS} elements",
                    f"filen har fler än {MAX_ELEMENTS} element",
                )
            ]
        if depth > MAX_DEPTH:
            return [
                problem(
                    None,
                    "xml.too_deep",
                    f"elements are nested more than {MAX_DEPTH} levels deep",
                    f"elementen är nästlade djupare än {MAX_DEPTH} nivåer",
                    line_of(node),
                )
            ]
        stack.extend((child, depth + 1) for child in node)
    return []


# --------------------------------------------------------------------------- decisions


def decision_problems(
    process: etree._Element,
    forms: Mapping[str, Any],
    catalogue: Mapping[str, Any],
    legal: Mapping[str, Any],
) -> list[Problem]:
    """A decision task names a known decision type and known legal references."""
    problems: list[Problem] = []
    proposed: set[str] = set()
    tasks = list(user_tasks(process))
    for task, props in tasks:
        element_id, line = task.get("id"), line_of(task)
        dtype = props.get("decisionType", "").strip()
        refs = [r.strip() for r in props.get("legalRef", "").split(",") if r.strip()]
        for ref in refs:
            if ref not in legal:
                problems.append(
                    problem(
                        element_id,
                        "decision.unknown_legal_ref",
                        f"the legal reference '{ref}' is not in the legal-reference catalogue",
                        f"lagrummet '{ref}' finns inte i lagrumskatalogen",
                        line,
                    )
                )
        if not dtype:
            if props.get("decisionOutcomeField", "").strip():
                problems.append(
                    problem(
                        element_id,
                        "decision.no_type",
                        "the task records a decision outcome but names no decision type "
                        "(decisionType)",
                        "uppgiften registrerar ett beslutsutfall men anger ingen beslutstyp "
                        "(decisionType)",
                        line,
                    )
                )
            continue
        proposed.add(dtype)
        if dtype not in catalogue:
            problems.append(
                problem(
                    element_id,
                    "decision.unknown_type",
                    f"the decision type '{dtype}' is not in the decision-type catalogue",
                    f"beslutstypen '{dtype}' finns inte i katalogen över beslutstyper",
                    line,
                )
            )
        if not refs:
            problems.append(
                problem(
                    element_id,
                    "decision.no_legal_ref",
                    "a decision task must name the legal reference it rests on (legalRef)",
                    "en beslutsuppgift måste ange det lagrum beslutet vilar på (legalRef)",
                    line,
                )
            )
    for task, props in tasks:
        approves = props.get("approvesDecision", "").strip()
        if approves and approves not in proposed:
            problems.append(
                problem(
                    task.get("id"),
                    "approval.unknown_type",
                    f"this task approves '{approves}', but no task of the model proposes it",
                    f"uppgiften attesterar '{approves}', men ingen uppgift i modellen föreslår det",
                    line_of(task),
                )
            )
    return problems


# --------------------------------------------------------------------------- timers


def _literal(text: str) -> str | None:
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _valid_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _valid_duration(value: str) -> bool:
    try:
        parse_duration(value)
    except ValueError:
        return False
    return True


def _cycleproblem(value: str) -> tuple[str, str, str] | None:
    """(code, en, sv) when a timer cycle is not ``R<n>/[start/]duration`` with a cap."""
    parts = value.split("/")
    if len(parts) not in (2, 3) or not parts[0].startswith("R"):
        return (
            "timer.invalid",
            f"the timer cycle '{value}' is not an ISO 8601 repetition such as 'R4/P3M'",
            f"timercykeln '{value}' är ingen ISO 8601-upprepning som 'R4/P3M'",
        )
    count = parts[0][1:]
    if not count.isdigit() or not 0 < int(count) <= MAX_TIMER_REPETITIONS:
        return (
            "loop.uncapped",
            f"the timer cycle '{value}' repeats without a cap: write e.g. 'R4/P3M'",
            f"timercykeln '{value}' upprepas utan tak: skriv t.ex. 'R4/P3M'",
        )
    if not _valid_duration(parts[-1]) or (len(parts) == 3 and not _valid_datetime(parts[1])):
        return (
            "timer.invalid",
            f"the timer cycle '{value}' is not valid ISO 8601",
            f"timercykeln '{value}' är inte giltig ISO 8601",
        )
    return None


def timer_problems(process: etree._Element) -> list[Problem]:
    """Timer values are quoted ISO 8601 literals (``"P14D"``), and cycles are capped."""
    problems: list[Problem] = []
    for timer in process.xpath(".//bpmn:timerEventDefinition", namespaces=NS):
        owner = timer.getparent()
        element_id = owner.get("id") if owner is not None else None
        values = [c for c in timer if isinstance(c.tag, str) and local(c).startswith("time")]
        if not values:
            problems.append(
                problem(
                    element_id,
                    "timer.missing",
                    "the timer has no time value (timeDuration, timeDate or timeCycle)",
                    "timern saknar tidsvärde (timeDuration, timeDate eller timeCycle)",
                    line_of(timer),
                )
            )
            continue
        for node in values:
            kind, text = local(node), (node.text or "").strip()
            value = _literal(text) if text else None
            if value is None:
                problems.append(
                    problem(
                        element_id,
                        "timer.not_literal",
                        f'{kind} must be a quoted ISO 8601 value such as "P14D" '
                        f"(got {text[:60]!r})",
                        f'{kind} måste vara ett citerat ISO 8601-värde som "P14D" '
                        f"(fick {text[:60]!r})",
                        line_of(node),
                    )
                )
                continue
            issue: tuple[str, str, str] | None = None
            if kind == "timeDuration" and not _valid_duration(value):
                issue = (
                    "timer.invalid",
                    f"'{value}' is not an ISO 8601 duration such as P14D or PT4H",
                    f"'{value}' är ingen ISO 8601-varaktighet som P14D eller PT4H",
                )
            elif kind == "timeDate" and not _valid_datetime(value):
                issue = (
                    "timer.invalid",
                    f"'{value}' is not an ISO 8601 date and time",
                    f"'{value}' är ingen ISO 8601-tidpunkt",
                )
            elif kind == "timeCycle":
                issue = _cycleproblem(value)
            if issue is not None:
                problems.append(problem(element_id, *issue, line_of(node)))
    return problems
