"""Importing a BPMN file from another tool as a draft (or refusing it with reasons).

A file that cannot be read safely (not XML, a DOCTYPE, too large, not BPMN, no process) is
refused with the checker's problems and nothing is stored. Anything else becomes a draft,
even with problems, so the process owner can fix it in the modeler. Camunda 7 models that
describe their forms with ``camunda:formData`` get generated Lotsen form specs, and the
user tasks get the ``formKey`` property that points at them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lxml import etree
from sqlalchemy.orm import Session

from engine.audit import Actor
from engine.models.processes import ProcessVersion
from engine.workflow.expressions import check_expression
from engine.workflow.problems import ModelError, UnsafeExpression
from engine.workflow.xmlsafe import MAX_BPMN_BYTES, parse_xml
from engine.workspace import rules
from engine.workspace.checker import CheckResult, Problem, as_utf8, check
from engine.workspace.versions import _require_owner, save_draft

__all__ = ["CAMUNDA_NS", "camunda_forms", "import_file"]

CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
_NS = {**rules.NS, "camunda": CAMUNDA_NS}
_ALLOWED_SUFFIXES = (".bpmn", ".bpmn20.xml", ".xml")
_KEY_RE = re.compile(r"[^a-z0-9_]+")
_FIELD_TYPES = {
    "string": "textfield",
    "long": "number",
    "integer": "number",
    "double": "number",
    "boolean": "checkbox",
    "date": "date",
    "enum": "select",
}
_JUEL = re.compile(r"^\s*\$\{(.*)\}\s*$", re.DOTALL)


def _refused(code: str, en: str, sv: str) -> tuple[None, CheckResult]:
    return None, CheckResult([Problem(None, code, en, sv)])


def _key(raw: str | None, fallback: str) -> str:
    """A lower_snake_case key as form specs require (``[a-z][a-z0-9_]*``)."""
    key = _KEY_RE.sub("_", (raw or "").strip().lower()).strip("_")
    if not key or not key[0].isalpha():
        key = f"{fallback}_{key}".strip("_")
    return key[:60]


def _label(text: str | None, fallback: str) -> dict[str, str]:
    value = (text or "").strip() or fallback
    return {"sv": value, "en": value}


def _field(node: etree._Element, taken: set[str]) -> dict[str, Any] | None:
    key = _key(node.get("id"), "field")
    if key in taken:
        return None
    taken.add(key)
    kind = _FIELD_TYPES.get((node.get("type") or "string").strip(), "textfield")
    component: dict[str, Any] = {
        "type": kind,
        "key": key,
        "label": _label(node.get("label"), node.get("id") or key),
    }
    if kind == "select":
        values: list[dict[str, Any]] = []
        for option in node.xpath("./camunda:value", namespaces=_NS):
            value = (option.get("id") or "").strip()
            if value and value not in {v["value"] for v in values}:
                values.append({"value": value, "label": _label(option.get("name"), value)})
        if not values:
            component["type"] = "textfield"
        else:
            component["values"] = values
    validate: dict[str, Any] = {}
    for constraint in node.xpath("./camunda:validation/camunda:constraint", namespaces=_NS):
        name, config = constraint.get("name"), (constraint.get("config") or "").strip()
        if name == "required":
            validate["required"] = config.lower() != "false"
        elif name in ("min", "max") and component["type"] == "number":
            try:
                validate[name] = float(config) if "." in config else int(config)
            except ValueError:
                continue
        elif (
            name in ("minlength", "maxlength")
            and component["type"] == "textfield"
            and config.isdigit()
        ):
            validate["minLength" if name == "minlength" else "maxLength"] = int(config)
    if validate:
        component["validate"] = validate
    return component


def _set_form_key(node: etree._Element, form_key: str) -> None:
    """Add (or replace) the ``formKey`` spiffworkflow property on a task or start event."""
    ext = node.find(f"{{{rules.BPMN_NS}}}extensionElements")
    if ext is None:
        ext = etree.Element(f"{{{rules.BPMN_NS}}}extensionElements")
        node.insert(0, ext)
    props = ext.find(f"{{{rules.SPIFF_NS}}}properties")
    if props is None:
        props = etree.SubElement(ext, f"{{{rules.SPIFF_NS}}}properties")
    for prop in props.findall(f"{{{rules.SPIFF_NS}}}property"):
        if prop.get("name") == "formKey":
            props.remove(prop)
    etree.SubElement(props, f"{{{rules.SPIFF_NS}}}property", name="formKey", value=form_key)


def camunda_forms(root: etree._Element) -> dict[str, Any]:
    """Generate form specs from ``camunda:formData`` and point the tasks at them (in place)."""
    forms: dict[str, Any] = {}
    owners = root.xpath(
        ".//bpmn:userTask[.//camunda:formData] | .//bpmn:startEvent[.//camunda:formData]",
        namespaces=_NS,
    )
    for node in owners:
        element_id = node.get("id") or "task"
        key = _key(node.get(f"{{{CAMUNDA_NS}}}formKey") or f"{element_id}_form", "form")
        if key in forms:
            key = _key(f"{key}_{element_id}", "form")
        taken: set[str] = set()
        fields = [
            f
            for f in (
                _field(n, taken)
                for n in node.xpath(
                    "./bpmn:extensionElements/camunda:formData/camunda:formField", namespaces=_NS
                )
            )
            if f is not None
        ]
        title = _label(node.get("name"), element_id)
        if not fields:
            fields = [{"type": "text", "text": title}]
        forms[key] = {"id": key, "title": title, "components": fields}
        _set_form_key(node, key)
    return forms


def _juel_conditions(root: etree._Element) -> None:
    """``${expr}`` conditions become ``expr`` when the inside is already in our subset."""
    for node in root.xpath(".//bpmn:conditionExpression", namespaces=_NS):
        match = _JUEL.match(node.text or "")
        if match is None:
            continue
        inner = match.group(1).strip()
        try:
            check_expression(inner)
        except UnsafeExpression:
            continue
        node.text = inner


def _with_spiff_namespace(root: etree._Element) -> etree._Element:
    """A copy of the root that declares the spiffworkflow prefix (for readable output)."""
    if root.nsmap.get("spiffworkflow") == rules.SPIFF_NS:
        return root
    nsmap = {**root.nsmap, "spiffworkflow": rules.SPIFF_NS}
    clone = etree.Element(root.tag, attrib=dict(root.attrib), nsmap=nsmap)
    clone.text = root.text
    for child in root:
        clone.append(child)
    return clone


def _is_bpmn(root: etree._Element) -> bool:
    return etree.QName(root).namespace == rules.BPMN_NS and rules.local(root) == "definitions"


def import_file(
    db: Session,
    actor: Actor,
    *,
    filename: str,
    data: bytes,
    forms: Mapping[str, Any] | None = None,
) -> tuple[ProcessVersion | None, CheckResult]:
    """Store an uploaded BPMN file as a draft; ``(None, problems)`` when it is refused."""
    _require_owner(actor)
    name = (filename or "").strip()
    if not name.lower().endswith(_ALLOWED_SUFFIXES):
        return _refused(
            "file.type",
            "upload a BPMN file (.bpmn or .xml)",
            "ladda upp en BPMN-fil (.bpmn eller .xml)",
        )
    if not isinstance(data, bytes | bytearray) or len(data) > MAX_BPMN_BYTES:
        return _refused(
            "xml.too_large",
            f"the file is larger than {MAX_BPMN_BYTES} bytes",
            f"filen är större än {MAX_BPMN_BYTES} byte",
        )
    try:
        root = parse_xml(bytes(data))
    except ModelError as exc:
        return None, CheckResult(
            [
                Problem(p.element_id, p.code, p.message_en, p.message_sv, p.line)
                for p in exc.problems
            ]
        )
    if not _is_bpmn(root):
        return _refused(
            "bpmn.not_bpmn",
            "the file is not a BPMN 2.0 model (its root is not bpmn:definitions)",
            "filen är ingen BPMN 2.0-modell (rotelementet är inte bpmn:definitions)",
        )
    if not rules.processes(root):
        return _refused(
            "bpmn.no_process",
            "the file has no process to import (only a collaboration or diagram)",
            "filen har ingen process att importera (bara ett samarbete eller diagram)",
        )
    all_forms: dict[str, Any] = {}
    if root.xpath(".//camunda:formData", namespaces=_NS):
        all_forms.update(camunda_forms(root))
        _juel_conditions(root)
        root = _with_spiff_namespace(root)
        xml: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    else:
        xml = as_utf8(bytes(data))
    all_forms.update(dict(forms or {}))
    version, result = save_draft(db, actor, bpmn_xml=xml, forms=all_forms, filename=name)
    return version, result


def preview(data: bytes, forms: Mapping[str, Any] | None = None) -> CheckResult:
    """The checker's verdict on a file without storing it."""
    return check(data, forms or {})
