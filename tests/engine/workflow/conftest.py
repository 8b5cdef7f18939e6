"""BPMN builders shared by the workflow-core tests (exposed as fixtures so no import path
tricks are needed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from xml.sax.saxutils import escape, quoteattr

import pytest

ROLES = frozenset(
    {
        "caseworker",
        "dv_team",
        "supervisor",
        "unit_manager",
        "committee",
        "coordinator",
        "housing_contact",
    }
)

HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"'
    ' xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"'
    ' id="defs" targetNamespace="http://lotsen.test/bpmn">\n'
)


def props(**values: str) -> str:
    """spiffworkflow:properties extension XML."""
    items = "".join(
        f"<spiffworkflow:property name={quoteattr(k)} value={quoteattr(v)}/>"
        for k, v in values.items()
    )
    return (
        "<bpmn:extensionElements><spiffworkflow:properties>"
        f"{items}</spiffworkflow:properties></bpmn:extensionElements>"
    )


@dataclass
class Model:
    """A tiny declarative process: nodes (id -> xml template), flows, lanes."""

    process_id: str = "demo"
    name: str = "Demo"
    nodes: dict[str, str] = field(default_factory=dict)
    flows: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    lanes: dict[str, list[str]] = field(default_factory=dict)
    extra: str = ""

    def node(self, ident: str, xml: str) -> Model:
        self.nodes[ident] = xml
        return self

    def flow(self, ident: str, src: str, dst: str, condition: str | None = None) -> Model:
        self.flows.append((ident, src, dst, condition))
        return self

    def xml(self) -> bytes:
        incoming: dict[str, list[str]] = {}
        outgoing: dict[str, list[str]] = {}
        for ident, src, dst, _ in self.flows:
            outgoing.setdefault(src, []).append(ident)
            incoming.setdefault(dst, []).append(ident)
        parts = [HEAD, f'<bpmn:process id="{self.process_id}" name="{self.name}"']
        parts.append(' isExecutable="true">\n')
        if self.lanes:
            parts.append('<bpmn:laneSet id="laneset">')
            for i, (lane, members) in enumerate(self.lanes.items()):
                refs = "".join(f"<bpmn:flowNodeRef>{m}</bpmn:flowNodeRef>" for m in members)
                parts.append(f'<bpmn:lane id="lane_{i}" name={quoteattr(lane)}>{refs}</bpmn:lane>')
            parts.append("</bpmn:laneSet>\n")
        for ident, template in self.nodes.items():
            links = "".join(f"<bpmn:incoming>{f}</bpmn:incoming>" for f in incoming.get(ident, []))
            links += "".join(f"<bpmn:outgoing>{f}</bpmn:outgoing>" for f in outgoing.get(ident, []))
            parts.append(template.replace("{links}", links) + "\n")
        for ident, src, dst, condition in self.flows:
            body = (
                f"<bpmn:conditionExpression>{escape(condition)}</bpmn:conditionExpression>"
                if condition is not None
                else ""
            )
            parts.append(
                f'<bpmn:sequenceFlow id="{ident}" sourceRef="{src}" targetRef="{dst}">'
                f"{body}</bpmn:sequenceFlow>\n"
            )
        parts.append(self.extra)
        parts.append("</bpmn:process>\n</bpmn:definitions>\n")
        return "".join(parts).encode("utf-8")


def start_event(ident: str = "start", form_key: str | None = "intake") -> str:
    ext = props(formKey=form_key) if form_key else ""
    return f'<bpmn:startEvent id="{ident}">{ext}{{links}}</bpmn:startEvent>'


def end_event(ident: str = "end") -> str:
    return f'<bpmn:endEvent id="{ident}">{{links}}</bpmn:endEvent>'


def user_task(ident: str, name: str | None = None, **properties: str) -> str:
    if "formKey" not in properties:
        properties["formKey"] = f"form_{ident}"
    if properties.get("formKey") == "":
        properties.pop("formKey")
    label = quoteattr(name or ident)
    ext = props(**properties) if properties else ""
    return f'<bpmn:userTask id="{ident}" name={label}>{ext}{{links}}</bpmn:userTask>'


def gateway(ident: str, default: str | None) -> str:
    attr = f' default="{default}"' if default else ""
    return f'<bpmn:exclusiveGateway id="{ident}"{attr}>{{links}}</bpmn:exclusiveGateway>'


def timer_boundary(ident: str, attached_to: str, duration: str, interrupting: bool = True) -> str:
    cancel = "" if interrupting else ' cancelActivity="false"'
    return (
        f'<bpmn:boundaryEvent id="{ident}" name="deadline" attachedToRef="{attached_to}"{cancel}>'
        "{links}<bpmn:timerEventDefinition>"
        f"<bpmn:timeDuration>{escape(duration)}</bpmn:timeDuration>"
        "</bpmn:timerEventDefinition></bpmn:boundaryEvent>"
    )


def linear(n: int, *, lane: str = "caseworker") -> Model:
    """start -> task_1 .. task_n -> end, all in one lane."""
    m = Model()
    m.node("start", start_event())
    prev = "start"
    for i in range(1, n + 1):
        ident = f"task_do_{i}"
        m.node(ident, user_task(ident, f"A{i} Steg {i}"))
        m.flow(f"f_{i}", prev, ident)
        prev = ident
    m.node("end", end_event())
    m.flow("f_end", prev, "end")
    m.lanes = {lane: list(m.nodes)}
    return m


def branching(condition: str = "amount > 100") -> Model:
    """Lanes, a gateway with a condition and a default flow, and a timer boundary event.

    start -> task_register (caseworker) -> gw
      gw --[condition]--> task_approve (supervisor, 14-day timer -> task_escalate) -> end
      gw --default--> task_close (caseworker) -> end
    """
    m = Model()
    m.node("start", start_event())
    m.node("task_register", user_task("task_register", "A1 Registrera"))
    m.node("gw", gateway("gw", default="f_default"))
    m.node(
        "task_approve",
        user_task(
            "task_approve",
            "A2 Attestera",
            approvesDecision="D-A6",
            approvalVariable="approved",
            deadline="P14D",
        ),
    )
    m.node("timer", timer_boundary("timer", "task_approve", '"P14D"'))
    m.node("task_escalate", user_task("task_escalate", "A3 Eskalera"))
    m.node("task_close", user_task("task_close", "A4 Avsluta"))
    m.node("end", end_event())
    m.flow("f1", "start", "task_register")
    m.flow("f2", "task_register", "gw")
    m.flow("f_big", "gw", "task_approve", condition)
    m.flow("f_default", "gw", "task_close")
    m.flow("f3", "task_approve", "end")
    m.flow("f4", "timer", "task_escalate")
    m.flow("f5", "task_escalate", "end")
    m.flow("f6", "task_close", "end")
    m.lanes = {
        "caseworker": ["start", "task_register", "gw", "task_close", "end"],
        "supervisor": ["task_approve", "timer", "task_escalate"],
    }
    return m


@pytest.fixture
def kit() -> SimpleNamespace:
    """Builders for test BPMN."""
    return SimpleNamespace(
        ROLES=ROLES,
        Model=Model,
        props=props,
        start_event=start_event,
        end_event=end_event,
        user_task=user_task,
        gateway=gateway,
        timer_boundary=timer_boundary,
        linear=linear,
        branching=branching,
    )
