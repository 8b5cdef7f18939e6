"""The one checker of the workspace: used on save, on upload and at publish.

It never raises for a bad model: every problem comes back as data, located by element id
(so the modeler can highlight it) with a plain-language message in Swedish and English.
The structural BPMN rules live in ``engine.workflow.specs`` (hardened parsing, BPMN 2.0 XSD,
SpiffWorkflow's own parser, lanes, expressions); this module adds what needs the whole
version: form specs, the decision and legal-reference catalogues, timer values and loops.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from lxml import etree

from engine.catalogs import decision_types, legal_refs
from engine.processes import declared_keys
from engine.roles import lane_role_ids
from engine.workflow.problems import ModelError
from engine.workflow.problems import Problem as ModelProblem
from engine.workflow.specs import ProcessModel, load_process_model
from engine.workflow.xmlsafe import parse_xml
from engine.workspace import rules
from engine.workspace.loops import loop_problems
from engine.workspace.problems import CheckResult, Problem

__all__ = [
    "CheckResult",
    "FormValidator",
    "Problem",
    "as_utf8",
    "check",
    "set_form_validator",
    "xml_text_bytes",
]

#: Validates one form spec; returns its problems as short English texts (empty = valid).
FormValidator = Callable[[Mapping[str, Any]], Sequence[str]]

_form_validator: FormValidator | None = None
_CACHE_SIZE = 32
_cache: OrderedDict[str, CheckResult] = OrderedDict()
_cache_lock = threading.Lock()


def set_form_validator(validator: FormValidator | None) -> None:
    """Install the form-spec validator (the web app installs ``forms.spec``'s).

    The engine may not import ``forms`` (import contract), yet the checker must judge form
    specs with the very rules the form builder applies; so the outer layer hands them in.
    Without one, only the basic shape of a spec is checked.
    """
    global _form_validator
    _form_validator = validator
    with _cache_lock:
        _cache.clear()


def _basic_form_problems(spec: Mapping[str, Any]) -> list[str]:
    """The shape every form spec must have, when no full validator is installed."""
    if not isinstance(spec, Mapping):
        return ["a form spec must be a JSON object"]
    problems = []
    if not isinstance(spec.get("id"), str) or not str(spec.get("id")).strip():
        problems.append("`id` must be a non-empty string")
    components = spec.get("components")
    if not isinstance(components, list):
        problems.append("`components` must be a list")
    else:
        for index, component in enumerate(components):
            if not isinstance(component, Mapping) or not isinstance(component.get("type"), str):
                problems.append(f"components[{index}]: must be an object with a type")
    return problems


def _from_model_problem(p: ModelProblem) -> Problem:
    return Problem(p.element_id, p.code, p.message_en, p.message_sv, p.line)


_DECLARED_ENCODING = re.compile(r"""^(\s*<\?xml[^>]*?encoding\s*=\s*["'])([^"']+)(["'])""")


def xml_text_bytes(text: str) -> bytes:
    """XML given as text, as UTF-8 bytes whose declaration says so (an editor may keep
    an old ``encoding="ISO-8859-1"`` declaration in text that is no longer Latin-1)."""
    return _DECLARED_ENCODING.sub(r"\g<1>UTF-8\g<3>", text, count=1).encode("utf-8")


def as_utf8(data: bytes) -> bytes:
    """The file as UTF-8 (versions are stored as text): unchanged when it already is, else
    re-serialized by the hardened parser (or, if it cannot be read, decoded leniently)."""
    try:
        root = parse_xml(data)
    except ModelError:
        return data.decode("utf-8", errors="replace").encode("utf-8")
    encoding = (root.getroottree().docinfo.encoding or "UTF-8").upper().replace("_", "-")
    if encoding in ("UTF-8", "UTF8", "US-ASCII", "ASCII"):
        try:
            data.decode("utf-8")
            return data
        except UnicodeDecodeError:
            pass
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _as_bytes(bpmn_xml: str | bytes) -> bytes | None:
    if isinstance(bpmn_xml, bytes | bytearray | memoryview):
        return bytes(bpmn_xml)
    if isinstance(bpmn_xml, str):
        return xml_text_bytes(bpmn_xml)
    return None


def _cache_key(raw: bytes, forms: Mapping[str, Any], extra: str) -> str | None:
    try:
        blob = json.dumps(forms, sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError, RecursionError):
        return None
    h = hashlib.sha256(raw)
    h.update(blob.encode())
    h.update(extra.encode())
    h.update(str(id(_form_validator)).encode())
    return h.hexdigest()


def check(
    bpmn_xml: str | bytes,
    forms: Mapping[str, Any],
    *,
    filename: str = "model.bpmn",
    process_id: str | None = None,
    known_roles: Collection[str] | None = None,
) -> CheckResult:
    """Every problem of a BPMN model and its form specs, or ``ok``.

    Rules: well-formed XML through the hardened parser (no DOCTYPE or entities, size,
    depth and element caps); valid against the BPMN 2.0 XSD (SpiffWorkflow's bundled
    schemas); SpiffWorkflow builds the spec; lanes are roles of ``bpmn/roles.toml``; every
    user task names an existing, valid form; every expression passes the sandbox; timers are
    quoted ISO 8601 values; decision tasks name a known decision type and legal references;
    every loop is capped.
    """
    raw = _as_bytes(bpmn_xml)
    if raw is None:
        return CheckResult(
            [Problem(None, "xml.invalid", "the model must be XML text", "modellen måste vara XML")]
        )
    if not isinstance(forms, Mapping):
        forms = {}
    roles = frozenset(known_roles) if known_roles is not None else lane_role_ids()
    key = _cache_key(raw, forms, f"{filename}|{process_id}|{sorted(roles)}")
    if key is not None:
        with _cache_lock:
            hit = _cache.get(key)
            if hit is not None:
                _cache.move_to_end(key)
                return hit
    try:
        result = _check(raw, forms, filename, process_id, roles)
    except Exception as exc:  # never an exception for a bad model: report it
        result = CheckResult(
            [
                Problem(
                    None,
                    "check.failed",
                    f"the model could not be checked ({type(exc).__name__})",
                    f"modellen kunde inte kontrolleras ({type(exc).__name__})",
                )
            ]
        )
    if key is not None:
        with _cache_lock:
            _cache[key] = result
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    return result


def _check(
    raw: bytes,
    forms: Mapping[str, Any],
    filename: str,
    process_id: str | None,
    roles: frozenset[str],
) -> CheckResult:
    try:
        root = parse_xml(raw)
    except ModelError as exc:
        return CheckResult([_from_model_problem(p) for p in exc.problems])
    problems: list[Problem] = list(rules.size_problems(root))
    if problems:
        return CheckResult(problems)

    model: ProcessModel | None = None
    try:
        model = load_process_model(raw, filename, process_id=process_id, known_roles=roles)
    except ModelError as exc:
        problems.extend(_located(_from_model_problem(p), root) for p in exc.problems)

    process = rules.pick_process(root, model.process_id if model else process_id)
    pid = model.process_id if model else (process.get("id") if process is not None else None)
    name = model.name if model else _process_name(process)
    if process is not None:
        problems.extend(_form_problems(process, forms))
        problems.extend(rules.decision_problems(process, forms, decision_types(), legal_refs()))
        problems.extend(rules.timer_problems(process))
        problems.extend(loop_problems(process))
    return CheckResult(_dedupe(problems), pid, name, model)


def _located(problem: Problem, root: etree._Element) -> Problem:
    """Give a problem found by line only (XSD errors) the id of the element on that line,
    so the modeler can highlight it."""
    if problem.element_id or problem.line is None:
        return problem
    for node in root.iter():
        if not isinstance(node.tag, str) or node.sourceline is None:
            continue
        if node.sourceline > problem.line:
            break
        if node.sourceline == problem.line and node.get("id"):
            return replace(problem, element_id=str(node.get("id")))
    return problem


def _process_name(process: etree._Element | None) -> str | None:
    if process is None:
        return None
    return (process.get("name") or "").strip() or process.get("id")


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str | None, str, str]] = set()
    unique = []
    for p in problems:
        key = (p.element_id, p.code, p.message_en)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def _form_problems(process: etree._Element, forms: Mapping[str, Any]) -> list[Problem]:
    """Every form key used must have a spec, and every spec given must be valid."""
    problems: list[Problem] = []
    validator = _form_validator or _basic_form_problems
    used = rules.form_keys_used(process)
    for key, element_id in used:
        if key not in forms:
            problems.append(
                Problem(
                    element_id,
                    "form.missing",
                    f"the form '{key}' is used here but there is no form spec with that key",
                    f"formuläret '{key}' används här men det finns inget formulär med den nyckeln",
                )
            )
    users = {key: element_id for key, element_id in used}
    for key in sorted(forms):
        spec = forms[key]
        try:
            issues = list(validator(spec)) if isinstance(spec, Mapping) else None
        except Exception as exc:  # a validator must not break the check
            issues = [f"could not be checked ({type(exc).__name__})"]
        if issues is None:
            issues = ["a form spec must be a JSON object"]
        for issue in issues[:20]:
            problems.append(
                Problem(
                    users.get(key),
                    "form.invalid",
                    f"form '{key}': {issue}",
                    f"formuläret '{key}' är felaktigt: {issue}",
                )
            )
    problems.extend(_field_reference_problems(process, forms))
    return problems


def _field_reference_problems(process: etree._Element, forms: Mapping[str, Any]) -> list[Problem]:
    """Properties that name a form field must name one the task's form declares."""
    problems = []
    for task, props in rules.user_tasks(process):
        spec = forms.get(props.get("formKey", "").strip())
        if not isinstance(spec, Mapping):
            continue
        keys = set(declared_keys(spec))
        for prop in ("decisionOutcomeField", "decisionReasonsField", "legalGroundField"):
            value = props.get(prop, "").strip()
            if value and value not in keys:
                problems.append(
                    Problem(
                        task.get("id"),
                        "form.field_missing",
                        f"{prop} names the field '{value}', which the task's form does not have",
                        f"{prop} anger fältet '{value}', som uppgiftens formulär saknar",
                        rules.line_of(task),
                    )
                )
    return problems
