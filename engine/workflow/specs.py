"""Loading and vetting process models (BPMN) before they are published.

Every rule of bpmn/README.md that can be checked statically is checked here, and all
problems are reported together, so a model fails when it is published rather than in a
caseworker's hands. The accepted model is reduced to what the rest of Lotsen needs
(`ProcessModel`): task metadata by BPMN id and the spec serialized once per version.
"""

from __future__ import annotations

import threading
import tomllib
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser

from engine.workflow.deadlines import parse_duration
from engine.workflow.expressions import check_expression
from engine.workflow.problems import ModelError, Problem, UnsafeExpression
from engine.workflow.serializer import spec_to_json
from engine.workflow.xmlsafe import parse_xml

__all__ = [
    "BPMN_NS",
    "SPIFF_NS",
    "ProcessModel",
    "TaskMeta",
    "lane_roles",
    "load_process_model",
    "load_roles",
]

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
_NS = {"bpmn": BPMN_NS, "spiffworkflow": SPIFF_NS}

_TRUE = "true"
_BOOL_VALUES = frozenset({"true", "false"})
_DEADLINE_FROM = frozenset({"task", "case"})

# Elements whose text SpiffWorkflow hands to the script engine as an expression.
_EXPRESSION_XPATH = (
    ".//bpmn:conditionExpression | .//bpmn:timeDuration | .//bpmn:timeDate | .//bpmn:timeCycle"
    " | .//bpmn:loopCardinality | .//bpmn:completionCondition | .//bpmn:condition"
    " | .//bpmn:messagePath | .//bpmn:formalExpression"
    " | .//spiffworkflow:messagePayload | .//spiffworkflow:payloadExpression"
    " | .//spiffworkflow:expression"
)
# Elements that would run code or call out of the system: refused outright.
_REFUSED = {
    "scriptTask": ("script tasks are not allowed", "skriptuppgifter är inte tillåtna"),
    "serviceTask": ("service tasks are not allowed", "tjänsteuppgifter är inte tillåtna"),
    "businessRuleTask": (
        "business rule (DMN) tasks are not supported",
        "affärsregeluppgifter (DMN) stöds inte",
    ),
    "script": ("embedded scripts are not allowed", "inbäddade skript är inte tillåtna"),
}
_REFUSED_SPIFF = {
    "preScript": ("preScript is not allowed", "preScript är inte tillåtet"),
    "postScript": ("postScript is not allowed", "postScript är inte tillåtet"),
    "scriptsOnInstances": ("scripts are not allowed", "skript är inte tillåtna"),
}

_XSD_LOCK = threading.Lock()  # lxml's XMLSchema keeps its error log on the object


@dataclass(frozen=True)
class TaskMeta:
    """A user task's identity, lane and properties (the `spiffworkflow:property` list)."""

    bpmn_id: str
    name: str
    lane: str | None
    is_user_task: bool
    properties: Mapping[str, str]

    def _get(self, key: str) -> str | None:
        value = self.properties.get(key)
        return value.strip() if isinstance(value, str) and value.strip() else None

    @property
    def form_key(self) -> str | None:
        return self._get("formKey")

    @property
    def decision_type(self) -> str | None:
        return self._get("decisionType")

    @property
    def decision_outcome_field(self) -> str | None:
        return self._get("decisionOutcomeField")

    @property
    def decision_reasons_field(self) -> str | None:
        return self._get("decisionReasonsField")

    @property
    def legal_refs(self) -> tuple[str, ...]:
        raw = self._get("legalRef") or ""
        return tuple(part.strip() for part in raw.split(",") if part.strip())

    @property
    def appealable(self) -> bool:
        return (self._get("appealable") or "").lower() == _TRUE

    @property
    def approves_decision(self) -> str | None:
        return self._get("approvesDecision")

    @property
    def approval_variable(self) -> str | None:
        return self._get("approvalVariable")

    @property
    def deadline(self) -> str | None:
        return self._get("deadline")

    @property
    def deadline_working_days(self) -> bool:
        return (self._get("deadlineWorkingDays") or "").lower() == _TRUE

    @property
    def deadline_from(self) -> str:
        return (self._get("deadlineFrom") or "task").lower()


@dataclass(frozen=True)
class ProcessModel:
    """A vetted process model version, ready to store and to run."""

    process_id: str
    name: str
    start_form_key: str | None
    tasks: Mapping[str, TaskMeta]  # user tasks by BPMN id
    lanes: frozenset[str]
    spec_json: str  # serialized spec + subprocess specs, stored ONCE per version

    @property
    def form_keys(self) -> frozenset[str]:
        """Every form the model refers to (start form included)."""
        keys = {t.form_key for t in self.tasks.values() if t.form_key}
        if self.start_form_key:
            keys.add(self.start_form_key)
        return frozenset(keys)


# ------------------------------------------------------------------ roles


def load_roles(path: Path) -> dict[str, dict[str, Any]]:
    """Read bpmn/roles.toml: role id -> its table (sv, en, lane, unit_scoped)."""
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    roles: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            roles[key] = dict(value)
    return roles


def lane_roles(roles: Mapping[str, Mapping[str, Any]]) -> frozenset[str]:
    """The role ids a BPMN lane may be named after (`lane = true`)."""
    return frozenset(k for k, v in roles.items() if v.get("lane") is True)


# ------------------------------------------------------------------ helpers


def _local(node: etree._Element) -> str:
    return str(etree.QName(node).localname)


def _line(node: etree._Element | None) -> int | None:
    line = getattr(node, "sourceline", None)
    return line if isinstance(line, int) else None


def _owner_id(node: etree._Element) -> str | None:
    """Id of the nearest element (itself or an ancestor) that has one."""
    current: etree._Element | None = node
    while current is not None:
        ident = current.get("id")
        if ident:
            return str(ident)
        current = current.getparent()
    return None


def _properties(node: etree._Element) -> dict[str, str]:
    props: dict[str, str] = {}
    for prop in node.xpath(
        "./bpmn:extensionElements/spiffworkflow:properties/spiffworkflow:property",
        namespaces=_NS,
    ):
        name = prop.get("name")
        if name:
            props[name] = prop.get("value", "")
    return props


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(
        self,
        element_id: str | None,
        en: str,
        sv: str,
        line: int | None = None,
        *,
        code: str = "model.invalid",
    ) -> None:
        self.problems.append(Problem(element_id, en, sv, line, code))

    def at(self, node: etree._Element, en: str, sv: str, *, code: str = "model.invalid") -> None:
        self.add(_owner_id(node), en, sv, _line(node), code=code)


def _processes(root: etree._Element) -> list[etree._Element]:
    if _local(root) == "process" and etree.QName(root).namespace == BPMN_NS:
        return [root]
    found: list[etree._Element] = root.xpath(".//bpmn:process", namespaces=_NS)
    return found


def _pick_process(
    root: etree._Element, process_id: str | None, out: _Collector
) -> etree._Element | None:
    processes = _processes(root)
    if process_id is not None:
        for proc in processes:
            if proc.get("id") == process_id:
                return proc
        out.add(
            process_id,
            f"process {process_id!r} not found in the file",
            f"processen {process_id!r} finns inte i filen",
            code="bpmn.process_not_found",
        )
        return None
    executable = [p for p in processes if p.get("isExecutable", "true") == "true"]
    if len(executable) == 1:
        return executable[0]
    if not executable:
        out.add(
            None,
            "the file has no executable process",
            "filen har ingen körbar process",
            code="bpmn.no_executable_process",
        )
    else:
        ids = ", ".join(str(p.get("id")) for p in executable)
        out.add(
            None,
            f"the file has several executable processes ({ids}); name the one to load",
            f"filen har flera körbara processer ({ids}); ange vilken som ska läsas in",
            code="bpmn.several_processes",
        )
    return None


def _xsd_problems(root: etree._Element, filename: str, out: _Collector) -> bool:
    """Validate against BPMN20.xsd + spiffworkflow.xsd, reporting every error with its line."""
    with _XSD_LOCK:
        VALIDATOR.preprocess(root)
        valid = bool(VALIDATOR.validator.validate(root))
        errors = list(VALIDATOR.validator.error_log) if not valid else []
    for err in errors[:50]:
        out.add(
            None,
            f"{filename}: not valid BPMN: {err.message}",
            f"{filename}: ogiltig BPMN: {err.message}",
            err.line if isinstance(err.line, int) and err.line > 0 else None,
            code="bpmn.xsd",
        )
    return valid


def _lane_map(process: etree._Element) -> tuple[dict[str, str], list[etree._Element]]:
    """flow node id -> lane name (innermost lane wins), and all lane elements."""
    lanes: list[etree._Element] = process.xpath(".//bpmn:lane", namespaces=_NS)
    by_node: dict[str, str] = {}
    for lane in lanes:
        name = (lane.get("name") or "").strip()
        for ref in lane.xpath("./bpmn:flowNodeRef", namespaces=_NS):
            if ref.text and name:
                by_node[ref.text.strip()] = name
    return by_node, lanes


def _iter_user_tasks(process: etree._Element) -> Iterator[etree._Element]:
    yield from process.xpath(".//bpmn:userTask | .//bpmn:manualTask", namespaces=_NS)


def _static_checks(
    scope: etree._Element, known_roles: Collection[str] | None, out: _Collector
) -> None:
    for tag, (en, sv) in _REFUSED.items():
        for node in scope.xpath(f".//bpmn:{tag}", namespaces=_NS):
            out.at(node, en, sv, code="element.refused")
    for tag, (en, sv) in _REFUSED_SPIFF.items():
        for node in scope.xpath(f".//spiffworkflow:{tag}", namespaces=_NS):
            out.at(node, en, sv, code="element.refused")

    for node in scope.xpath(_EXPRESSION_XPATH, namespaces=_NS):
        text = (node.text or "").strip()
        kind = _local(node)
        try:
            if not text:
                raise UnsafeExpression("empty expression")
            check_expression(text)
        except UnsafeExpression as exc:
            out.at(
                node,
                f"{kind}: expression refused: {exc}",
                f"{kind}: uttrycket godtas inte: {exc}",
                code="expression.refused",
            )

    lane_of, lanes = _lane_map(scope)
    for lane in lanes:
        name = (lane.get("name") or "").strip()
        if not name:
            out.at(lane, "a lane has no name", "en simbana saknar namn", code="lane.unnamed")
        elif known_roles is not None and name not in known_roles:
            out.at(
                lane,
                f"lane {name!r} is not a role in roles.toml (lane = true)",
                f"simbanan {name!r} är ingen roll i roles.toml (lane = true)",
                code="lane.unknown",
            )

    for gateway in scope.xpath(".//bpmn:exclusiveGateway", namespaces=_NS):
        outgoing = gateway.xpath("./bpmn:outgoing", namespaces=_NS)
        if len(outgoing) > 1 and not gateway.get("default"):
            out.at(
                gateway,
                "exclusive gateway has no default flow",
                "den exklusiva gatewayen saknar standardflöde",
                code="gateway.no_default",
            )

    for task in _iter_user_tasks(scope):
        _check_user_task(task, lane_of, known_roles, out)


def _check_user_task(
    task: etree._Element,
    lane_of: Mapping[str, str],
    known_roles: Collection[str] | None,
    out: _Collector,
) -> None:
    props = _properties(task)

    def has(key: str) -> bool:
        return bool(props.get(key, "").strip())

    if not has("formKey"):
        out.at(
            task,
            "user task has no formKey property",
            "användaruppgiften saknar formKey",
            code="task.no_form_key",
        )
    if known_roles is not None and task.get("id") not in lane_of:
        out.at(
            task,
            "user task is not in a lane",
            "användaruppgiften ligger inte i en simbana",
            code="task.no_lane",
        )
    if has("decisionType") and not has("decisionOutcomeField"):
        out.at(
            task,
            "decision task (decisionType) has no decisionOutcomeField",
            "beslutsuppgiften (decisionType) saknar decisionOutcomeField",
            code="decision.no_outcome_field",
        )
    if has("approvesDecision") and not has("approvalVariable"):
        out.at(
            task,
            "approval task (approvesDecision) has no approvalVariable",
            "attestuppgiften (approvesDecision) saknar approvalVariable",
            code="approval.no_variable",
        )
    if has("deadline"):
        try:
            parse_duration(props["deadline"])
        except ValueError:
            out.at(
                task,
                "deadline is not an ISO 8601 duration (e.g. P5D)",
                "deadline är ingen ISO 8601-varaktighet (t.ex. P5D)",
                code="deadline.invalid",
            )
    for key in ("appealable", "deadlineWorkingDays"):
        if has(key) and props[key].strip().lower() not in _BOOL_VALUES:
            out.at(
                task,
                f"{key} must be true or false",
                f"{key} måste vara true eller false",
                code="property.invalid",
            )
    if has("deadlineFrom") and props["deadlineFrom"].strip().lower() not in _DEADLINE_FROM:
        out.at(
            task,
            "deadlineFrom must be 'task' or 'case'",
            "deadlineFrom måste vara 'task' eller 'case'",
            code="property.invalid",
        )


def _line_of_id(root: etree._Element, element_id: str) -> int | None:
    for node in root.iter():
        if isinstance(node.tag, str) and node.get("id") == element_id:
            return _line(node)
    return None


def _task_metas(specs: Iterator[Any]) -> dict[str, TaskMeta]:
    tasks: dict[str, TaskMeta] = {}
    for spec in specs:
        for task_spec in spec.task_specs.values():
            if not getattr(task_spec, "manual", False) or task_spec.bpmn_id is None:
                continue
            extensions = getattr(task_spec, "extensions", None) or {}
            props = extensions.get("properties") or {}
            tasks[task_spec.bpmn_id] = TaskMeta(
                bpmn_id=task_spec.bpmn_id,
                name=task_spec.bpmn_name or task_spec.bpmn_id,
                lane=task_spec.lane,
                is_user_task=True,
                properties=MappingProxyType({str(k): str(v) for k, v in props.items()}),
            )
    return tasks


# ------------------------------------------------------------------ entry point


def load_process_model(
    bpmn_xml: bytes,
    filename: str = "model.bpmn",
    *,
    process_id: str | None = None,
    known_roles: Collection[str] | None = None,
) -> ProcessModel:
    """Parse, validate and vet one BPMN file; raise ModelError listing every problem."""
    root = parse_xml(bpmn_xml)
    out = _Collector()
    xsd_ok = _xsd_problems(root, filename, out)
    process = _pick_process(root, process_id, out)
    _static_checks(root, known_roles, out)  # every process in the file, not only the chosen
    if out.problems or process is None or not xsd_ok:
        raise ModelError(out.problems)

    pid = str(process.get("id"))
    try:
        # Validated above (with every error collected), so the parser need not repeat it.
        parser = SpiffBpmnParser(validator=None)
        parser.add_bpmn_xml(root, filename=filename)
        spec = parser.get_spec(pid)
        subprocess_specs = parser.get_subprocess_specs(pid)
    except ValidationException as exc:
        element_id = exc.id or None
        line = exc.line_number if isinstance(exc.line_number, int) else None
        if line is None and element_id:
            line = _line_of_id(root, element_id)
        message = str(exc.args[0]) if exc.args else str(exc)
        raise ModelError(
            [Problem(element_id, message, f"modellfel: {message}", line, "bpmn.structure")]
        ) from None
    except Exception as exc:  # the parser raises plain errors on some malformed graphs
        raise ModelError(
            [
                Problem(
                    None,
                    f"the model could not be parsed ({type(exc).__name__})",
                    f"modellen kunde inte tolkas ({type(exc).__name__})",
                    code="bpmn.structure",
                )
            ]
        ) from None

    start_form_key: str | None = None
    for start in process.xpath("./bpmn:startEvent", namespaces=_NS):
        key = _properties(start).get("formKey", "").strip()
        if key:
            start_form_key = key
            break

    tasks = _task_metas(iter([spec, *subprocess_specs.values()]))
    lanes = {t.lane for t in tasks.values() if t.lane}
    lanes.update(n for n in _lane_map(process)[0].values())
    return ProcessModel(
        process_id=pid,
        name=(process.get("name") or "").strip() or pid,
        start_form_key=start_form_key,
        tasks=MappingProxyType(tasks),
        lanes=frozenset(lanes),
        spec_json=spec_to_json(spec, subprocess_specs),
    )
