"""The loop rule: every cycle in a flow must be capped.

SpiffWorkflow silently stops seeing tasks past task-tree depth 1000 (spiffworkflow-notes.md
§10), so a loop without a cap is a model error found at check time, not a runtime surprise.
A loop is capped when it passes an approval task (the engine refuses a decision's sixth
return, ``engine.actions.MAX_RETURNS``); a loop marker needs a ``loopMaximum``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from lxml import etree

from engine.workspace.problems import Problem
from engine.workspace.rules import (
    BPMN_NS,
    MAX_TIMER_REPETITIONS,
    NS,
    line_of,
    local,
    problem,
    properties,
)

__all__ = ["loop_problems"]

_FLOW_CONTAINERS = ".//bpmn:process | .//bpmn:subProcess | .//bpmn:transaction"


def _graph(container: etree._Element) -> tuple[dict[str, set[str]], dict[str, etree._Element]]:
    """Direct flow-node children of a container and their edges (flows and boundaries)."""
    nodes: dict[str, etree._Element] = {}
    edges: dict[str, set[str]] = {}
    for child in container:
        if not isinstance(child.tag, str) or etree.QName(child).namespace != BPMN_NS:
            continue
        ident = child.get("id")
        if ident and local(child) not in ("sequenceFlow", "laneSet", "extensionElements"):
            nodes[ident] = child
            edges.setdefault(ident, set())
    for flow in container.xpath("./bpmn:sequenceFlow", namespaces=NS):
        src, dst = flow.get("sourceRef"), flow.get("targetRef")
        if src in nodes and dst in nodes:
            edges[src].add(dst)
    for boundary in container.xpath("./bpmn:boundaryEvent", namespaces=NS):
        host = boundary.get("attachedToRef")
        if host in nodes and boundary.get("id") in nodes:
            edges[host].add(boundary.get("id"))
    return edges, nodes


def _cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components that contain a cycle (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in edges:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    item = stack.pop()
                    on_stack.discard(item)
                    component.append(item)
                    if item == node:
                        break
                if len(component) > 1 or node in edges.get(node, ()):
                    found.append(sorted(component))
    return found


def _is_cap(node: etree._Element) -> bool:
    """An approval task caps a loop: the engine refuses a decision's sixth return."""
    return local(node) in ("userTask", "manualTask") and bool(
        properties(node).get("approvesDecision", "").strip()
    )


def loop_problems(process: etree._Element) -> list[Problem]:
    """Every loop in the flow must pass an approval task (whose returns the engine caps);
    loop markers need a ``loopMaximum``. SpiffWorkflow silently stops seeing tasks past
    depth 1000, so an uncapped loop is a model error, not a runtime surprise."""
    problems: list[Problem] = []
    containers = [process, *process.xpath(_FLOW_CONTAINERS, namespaces=NS)]
    for container in containers:
        edges, nodes = _graph(container)
        for component in _cycles(edges):
            if any(_is_cap(nodes[n]) for n in component):
                continue
            first = component[0]
            listed = ", ".join(component[:8]) + (" …" if len(component) > 8 else "")
            problems.append(
                problem(
                    first,
                    "loop.uncapped",
                    f"the flow loops without a cap through {listed}; a loop must pass an "
                    "approval task (approvesDecision), whose returns are limited",
                    f"flödet går i en slinga utan tak genom {listed}; en slinga måste passera "
                    "en attestuppgift (approvesDecision), vars återförvisningar är begränsade",
                    line_of(nodes[first]),
                )
            )
    for marker in process.xpath(".//bpmn:standardLoopCharacteristics", namespaces=NS):
        raw = (marker.get("loopMaximum") or "").strip()
        if not raw.isdigit() or not 0 < int(raw) <= MAX_TIMER_REPETITIONS:
            owner = marker.getparent()
            problems.append(
                problem(
                    owner.get("id") if owner is not None else None,
                    "loop.uncapped",
                    "a loop marker needs a loopMaximum (a whole number above 0)",
                    "en loopmarkering behöver loopMaximum (ett heltal större än 0)",
                    line_of(marker),
                )
            )
    return problems
