"""What changed between two versions: elements of the diagram and fields of the forms.

Compared on the BPMN XML (what a process owner edits), element by element id: its name,
lane, form, condition, timer, decision type, legal reference, deadline and other Lotsen
properties; and the form specs field by field. The migration planner uses the same diff.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from sqlalchemy.orm import Session

from engine.models.processes import ProcessVersion
from engine.workflow.problems import ModelError
from engine.workflow.xmlsafe import parse_xml
from engine.workspace import rules
from engine.workspace.versions import get_version

__all__ = ["ElementChange", "ElementInfo", "FormDiff", "VersionDiff", "diff", "diff_models"]

#: Element kinds that are diagram content (flows and nodes), not DI or definitions.
_SKIP = frozenset(
    {
        "extensionElements",
        "documentation",
        "incoming",
        "outgoing",
        "laneSet",
        "lane",
        "flowNodeRef",
        "conditionExpression",
        "property",
        "properties",
    }
)
_PROPERTY_NAMES = {
    "formKey": "form_key",
    "decisionType": "decision_type",
    "legalRef": "legal_ref",
    "deadline": "deadline",
}
_FIELD_ATTRS = ("type", "label", "description", "values", "validate", "conditional", "sensitive")


@dataclass(frozen=True)
class ElementInfo:
    """One element of a diagram, reduced to what a process owner edits."""

    id: str
    type: str
    name: str | None
    attrs: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "name": self.name}


@dataclass(frozen=True)
class ElementChange:
    """An element present in both versions whose attributes differ."""

    id: str
    type: str
    name: str | None
    changes: Mapping[str, tuple[Any, Any]]  # attribute -> (old, new)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "name": self.name,
            "changes": [
                {"attribute": k, "old": _jsonable(v[0]), "new": _jsonable(v[1])}
                for k, v in sorted(self.changes.items())
            ],
        }


@dataclass(frozen=True)
class FormDiff:
    """Fields of one form key: added, removed and changed (with the attributes that did)."""

    form_key: str
    status: str  # "added" | "removed" | "changed"
    fields_added: list[str]
    fields_removed: list[str]
    fields_changed: dict[str, list[str]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "form_key": self.form_key,
            "status": self.status,
            "fields_added": self.fields_added,
            "fields_removed": self.fields_removed,
            "fields_changed": [
                {"key": k, "attributes": v} for k, v in sorted(self.fields_changed.items())
            ],
        }


@dataclass(frozen=True)
class VersionDiff:
    """Elements and form fields added, removed and changed from version a to version b."""

    a_id: int | None
    b_id: int | None
    added: list[ElementInfo]
    removed: list[ElementInfo]
    changed: list[ElementChange]
    forms: list[FormDiff]
    #: the diagram of a side could not be read (then every element counts as changed)
    unreadable: bool = False

    @property
    def changed_element_ids(self) -> frozenset[str]:
        """Ids of elements removed or changed (what a running instance must not have used)."""
        return frozenset([e.id for e in self.removed] + [c.id for c in self.changed])

    @property
    def changed_form_keys(self) -> frozenset[str]:
        return frozenset(f.form_key for f in self.forms)

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.forms or self.unreadable)

    def as_dict(self) -> dict[str, Any]:
        return {
            "from_version_id": self.a_id,
            "to_version_id": self.b_id,
            "elements": {
                "added": [e.as_dict() for e in self.added],
                "removed": [e.as_dict() for e in self.removed],
                "changed": [c.as_dict() for c in self.changed],
            },
            "forms": [f.as_dict() for f in self.forms],
            "unreadable": self.unreadable,
        }


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.loads(json.dumps(value, default=str))


def _text(node: etree._Element | None) -> str | None:
    if node is None:
        return None
    text = (node.text or "").strip()
    return text or None


def _elements(xml: str) -> dict[str, ElementInfo] | None:
    """Diagram elements by id, or None when the XML cannot be read."""
    try:
        root = parse_xml(xml.encode("utf-8"))
    except ModelError:
        return None
    found: dict[str, ElementInfo] = {}
    for process in rules.processes(root):
        lane_of: dict[str, str] = {}
        for lane in process.xpath(".//bpmn:lane", namespaces=rules.NS):
            for ref in lane.xpath("./bpmn:flowNodeRef", namespaces=rules.NS):
                if ref.text:
                    lane_of[ref.text.strip()] = (lane.get("name") or "").strip()
        for node in process.iter():
            if not isinstance(node.tag, str) or etree.QName(node).namespace != rules.BPMN_NS:
                continue
            kind = rules.local(node)
            ident = node.get("id")
            if not ident or kind in _SKIP or node is process:
                continue
            found[ident] = ElementInfo(ident, kind, node.get("name"), _attributes(node, lane_of))
    return found


def _attributes(node: etree._Element, lane_of: Mapping[str, str]) -> dict[str, Any]:
    ident = str(node.get("id"))
    attrs: dict[str, Any] = {"name": node.get("name"), "lane": lane_of.get(ident)}
    props = rules.properties(node)
    for prop, attr in _PROPERTY_NAMES.items():
        attrs[attr] = props.pop(prop, None)
    attrs["properties"] = props or None
    attrs["documentation"] = _text(
        next(iter(node.xpath("./bpmn:documentation", namespaces=rules.NS)), None)
    )
    if rules.local(node) == "sequenceFlow":
        attrs["source"] = node.get("sourceRef")
        attrs["target"] = node.get("targetRef")
        attrs["condition"] = _text(
            next(iter(node.xpath("./bpmn:conditionExpression", namespaces=rules.NS)), None)
        )
    timers = node.xpath("./bpmn:timerEventDefinition/*", namespaces=rules.NS)
    if timers:
        attrs["timer"] = {rules.local(t): _text(t) for t in timers}
    if node.get("default"):
        attrs["default_flow"] = node.get("default")
    if node.get("attachedToRef"):
        attrs["attached_to"] = node.get("attachedToRef")
        attrs["interrupting"] = node.get("cancelActivity", "true")
    definitions = [
        rules.local(d)
        for d in node
        if isinstance(d.tag, str) and rules.local(d).endswith("Definition")
    ]
    if definitions:
        attrs["event"] = sorted(definitions)
    messages = node.xpath(".//bpmn:messageEventDefinition", namespaces=rules.NS)
    if messages:
        attrs["message"] = messages[0].get("messageRef")
    return {k: v for k, v in attrs.items() if v is not None}


def _form_fields(spec: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(spec, Mapping):
        return {}
    fields: dict[str, dict[str, Any]] = {}
    components = spec.get("components")
    for c in components if isinstance(components, list) else []:
        if isinstance(c, Mapping) and isinstance(c.get("key"), str):
            fields[c["key"]] = {a: c.get(a) for a in _FIELD_ATTRS}
    return fields


def _form_diffs(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[FormDiff]:
    diffs: list[FormDiff] = []
    for key in sorted(set(a) | set(b)):
        if key not in b:
            diffs.append(FormDiff(key, "removed", [], sorted(_form_fields(a[key])), {}))
            continue
        if key not in a:
            diffs.append(FormDiff(key, "added", sorted(_form_fields(b[key])), [], {}))
            continue
        if a[key] == b[key]:
            continue
        old, new = _form_fields(a[key]), _form_fields(b[key])
        changed = {
            k: [attr for attr in _FIELD_ATTRS if old[k].get(attr) != new[k].get(attr)]
            for k in sorted(set(old) & set(new))
            if old[k] != new[k]
        }
        diffs.append(
            FormDiff(
                key,
                "changed",
                sorted(set(new) - set(old)),
                sorted(set(old) - set(new)),
                changed,
            )
        )
    return diffs


def diff_models(
    a_xml: str,
    a_forms: Mapping[str, Any],
    b_xml: str,
    b_forms: Mapping[str, Any],
    *,
    a_id: int | None = None,
    b_id: int | None = None,
) -> VersionDiff:
    """The diff of two models given as XML text and form specs."""
    old, new = _elements(a_xml), _elements(b_xml)
    forms = _form_diffs(a_forms or {}, b_forms or {})
    if old is None or new is None:
        return VersionDiff(a_id, b_id, [], [], [], forms, unreadable=True)
    added = [new[i] for i in sorted(set(new) - set(old))]
    removed = [old[i] for i in sorted(set(old) - set(new))]
    changed = []
    for ident in sorted(set(old) & set(new)):
        before, after = old[ident], new[ident]
        changes = {
            k: (before.attrs.get(k), after.attrs.get(k))
            for k in sorted(set(before.attrs) | set(after.attrs))
            if before.attrs.get(k) != after.attrs.get(k)
        }
        if before.type != after.type:
            changes["type"] = (before.type, after.type)
        if changes:
            changed.append(ElementChange(ident, after.type, after.name, changes))
    return VersionDiff(a_id, b_id, added, removed, changed, forms)


def diff(db: Session, a_id: int, b_id: int) -> VersionDiff:
    """What changed from version ``a_id`` to version ``b_id`` (any two versions)."""
    a: ProcessVersion = get_version(db, a_id)
    b: ProcessVersion = get_version(db, b_id)
    return diff_models(a.bpmn_xml, a.forms or {}, b.bpmn_xml, b.forms or {}, a_id=a.id, b_id=b.id)
