"""The sandboxed expression language: payloads refused with no side effect, good
expressions evaluated like Python, and the SpiffWorkflow glue never running scripts."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from lxml import etree
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.util.task import TaskState

from engine.workflow.expressions import (
    SandboxEnvironment,
    SandboxScriptEngine,
    check_expression,
    evaluate,
)
from engine.workflow.problems import ExpressionNameError, ScriptsDisabled, UnsafeExpression
from engine.workflow.runtime import WorkflowRuntime
from engine.workflow.serializer import spec_to_json


def payloads(marker: Path) -> list[str]:
    m = str(marker)
    return [
        f"__import__('os').system('touch {m}')",
        "__import__('os').system('id')",
        "().__class__.__mro__[1].__subclasses__()",
        "len(().__class__.__mro__[1].__subclasses__())",
        f"open('{m}', 'w')",
        "open('/etc/passwd').read()",
        f"uuid.os.system('touch {m}')",
        "random._os.popen('id')",
        f"(lambda: __import__('os').system('touch {m}'))()",
        "lambda: 1",
        "[x for x in range(10)]",
        "{x: 1 for x in items}",
        "{x for x in items}",
        "any(x for x in items)",
        "f'{amount}'",
        "'a'*10**9",
        "9**9**9",
        "2 ** 8",
        "_x",
        "__builtins__",
        "globals()",
        "getattr(amount, 'real')",
        "eval('1')",
        "exec('x=1')",
        "compile('1', 'f', 'eval')",
        "type(amount)",
        "vars()",
        "(y := 5)",
        "[*items]",
        "{**d}",
        "min(*items)",
        "max(items, key=len)",
        "amount.real",
        "'abc'.upper()",
        "'%999999999s' % 'a'",
        "'a' * 10001",
        "'a' * 5000 * 3",
        "[1] * 10_000 * 2",
        "round(5, -(10**18))",
        "round(5, -1000000000000)",
        "1 << 100",
        "~amount",
        "amount @ amount",
        "b'bytes'",
        "1j",
        "...",
        "'x' * " + "9" * 30,
        "'" + "a" * 1001 + "'",
        "1 + " * 700 + "1",
        "not " * 100 + "True",
        "",
        "amount >",
        "import os",
        "x = 1",
    ]


GOOD: list[tuple[str, dict[str, Any], Any]] = [
    ("amount > 100 and kind == 'gold'", {"amount": 150, "kind": "gold"}, True),
    ("amount > 100 and kind == 'gold'", {"amount": 50, "kind": "gold"}, False),
    ("'sexual' in exploitation_forms", {"exploitation_forms": ["labour", "sexual"]}, True),
    ("'sexual' not in exploitation_forms", {"exploitation_forms": []}, True),
    ("len(children) > 0", {"children": [{"name": "A"}]}, True),
    ('"P14D"', {}, "P14D"),
    ("'P5D'", {}, "P5D"),
    ("x if y else z", {"x": 1, "y": False, "z": 2}, 2),
    ("x if y else z", {"x": 1, "y": True, "z": 2}, 1),
    ("a or b", {"a": 0, "b": "fallback"}, "fallback"),
    ("a and b", {"a": 0, "b": "never"}, 0),
    ("not flag", {"flag": False}, True),
    ("-n + +n", {"n": 3}, 0),
    ("1 < n <= 3", {"n": 3}, True),
    ("1 < n < 3", {"n": 3}, False),
    ("n is None", {"n": None}, True),
    ("n is not None", {"n": 1}, True),
    ("(a + b) * 2 - c / 4 + c // 3 + c % 5", {"a": 1, "b": 2, "c": 8}, 9.0),
    ("d['k'][1]", {"d": {"k": [10, 20]}}, 20),
    ("s[1:3]", {"s": "abcd"}, "bc"),
    ("s[::-1]", {"s": "abc"}, "cba"),
    ("[1, 2] + [3]", {}, [1, 2, 3]),
    ("(1, 2)", {}, (1, 2)),
    ("{'a': 1}['a']", {}, 1),
    ("2 in {1, 2}", {}, True),
    ("min(a, b) + max([1, 5]) + abs(-2)", {"a": 3, "b": 4}, 10),
    ("any(v) and not all(v)", {"v": [True, False]}, True),
    ("sum(v) + sum(v, 10)", {"v": [1, 2]}, 16),
    ("int('42') + float('1.5') + int(2.9)", {}, 45.5),
    ("str(5) + str(None)", {}, "5None"),
    ("bool([]) or bool(1)", {}, True),
    ("round(2.567, 2)", {}, 2.57),
    ("round(2.5)", {}, 2),
    ("'a' * 3", {}, "aaa"),
    ("3 * [0]", {}, [0, 0, 0]),
    (
        "risk_level == 'high' or immediate_danger",
        {"risk_level": "low", "immediate_danger": True},
        True,
    ),
    ("True", {}, True),
    ("None", {}, None),
    ("len", {"len": 3}, 3),  # a data name may shadow a function name when not called
]


@pytest.mark.parametrize("expr", payloads(Path("/tmp/lotsen-never-created")))
def test_payloads_are_refused(expr: str, tmp_path: Path) -> None:
    data = {"amount": 1, "items": [1, 2], "d": {}, "uuid": object(), "random": object()}
    with pytest.raises((UnsafeExpression, ExpressionNameError)):
        evaluate(expr, data)


def test_payloads_have_no_side_effect(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for expr in payloads(marker):
        with pytest.raises((UnsafeExpression, ExpressionNameError)):
            evaluate(expr, {"amount": 1, "items": [1], "d": {}})
    assert not marker.exists()


@pytest.mark.parametrize("expr", ["9**9**9", "'a'*10**9", "'a' * 10000 * 10000", "[0] * 10**12"])
def test_dos_payloads_fail_fast(expr: str) -> None:
    started = time.perf_counter()
    with pytest.raises(UnsafeExpression):
        evaluate(expr, {})
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(("expr", "data", "expected"), GOOD)
def test_good_expressions(expr: str, data: dict[str, Any], expected: Any) -> None:
    check_expression(expr)
    assert evaluate(expr, data) == expected


def test_check_messages_name_the_construct() -> None:
    cases = {
        "a.b": "attribute",
        "lambda: 1": "lambda",
        "[x for x in y]": "comprehension",
        "f'{x}'": "f-string",
        "2 ** 3": "**",
        "open('x')": "open",
        "_secret": "_",
    }
    for expr, word in cases.items():
        with pytest.raises(UnsafeExpression, match=None) as info:
            check_expression(expr)
        assert word in str(info.value), (expr, str(info.value))


def test_unknown_name_is_a_name_error() -> None:
    with pytest.raises(NameError, match="'missing'"):
        evaluate("missing > 1", {})


def test_objects_in_data_are_not_usable() -> None:
    # Even without attribute access, a non-data object (module, function) is refused.
    import os

    with pytest.raises(UnsafeExpression):
        evaluate("m", {"m": os})
    with pytest.raises(UnsafeExpression):
        evaluate("f", {"f": print})


def test_str_of_containers_is_refused() -> None:
    with pytest.raises(UnsafeExpression):
        evaluate("str(['a' * 10000] * 10000)", {})


def test_non_string_expression() -> None:
    with pytest.raises(UnsafeExpression):
        check_expression(42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- engine glue


def test_environment_evaluates_and_refuses_scripts() -> None:
    env = SandboxEnvironment()
    assert env.evaluate("a + b", {"a": 1}, {"b": 2}) == 3
    assert env.evaluate("a", {"a": 1}, {"a": 2}) == 1  # task data wins, as in SpiffWorkflow
    with pytest.raises(ScriptsDisabled):
        env.execute("x = 1", {})
    with pytest.raises(ScriptsDisabled):
        env.call_service({})


def test_engine_wraps_errors_and_refuses_scripts() -> None:
    engine = SandboxScriptEngine()
    task = SimpleNamespace(data={"a": 2}, task_spec=SimpleNamespace(bpmn_name="t"), workflow=None)
    assert engine.evaluate(task, "a * 2") == 4
    assert engine.evaluate(task, '"P5D"') == "P5D"
    engine.validate("a > 1")
    with pytest.raises(UnsafeExpression):
        engine.validate("a.b")


GATEWAY_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d"
  targetNamespace="t">
  <bpmn:process id="p" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:exclusiveGateway id="gw" default="f3"><bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing><bpmn:outgoing>f3</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:endEvent id="e1"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="e2"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="gw"/>
    <bpmn:sequenceFlow id="f2" sourceRef="gw" targetRef="e1">
      <bpmn:conditionExpression>CONDITION</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f3" sourceRef="gw" targetRef="e2"/>
  </bpmn:process>
</bpmn:definitions>"""

SCRIPT_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d"
  targetNamespace="t">
  <bpmn:process id="p" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:scriptTask id="script"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>SCRIPT</bpmn:script></bpmn:scriptTask>
    <bpmn:endEvent id="e"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="script"/>
    <bpmn:sequenceFlow id="f2" sourceRef="script" targetRef="e"/>
  </bpmn:process>
</bpmn:definitions>"""


def _unvetted_spec_json(xml: str) -> str:
    """Build a spec WITHOUT load_process_model's checks, to prove the runtime guard holds."""
    parser = SpiffBpmnParser()
    parser.add_bpmn_xml(etree.fromstring(xml.encode()), filename="x.bpmn")
    return spec_to_json(parser.get_spec("p"), parser.get_subprocess_specs("p"))


def test_gateway_condition_payload_refused_at_run_time(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    condition = f"__import__('os').system('touch {marker}') == 0"
    spec_json = _unvetted_spec_json(GATEWAY_BPMN.replace("CONDITION", condition))
    with pytest.raises(WorkflowTaskException) as info:
        WorkflowRuntime().start("gw-payload", spec_json, {})
    assert "not allowed" in str(info.value)
    assert not marker.exists()


def test_gateway_condition_good_runs(tmp_path: Path) -> None:
    spec_json = _unvetted_spec_json(GATEWAY_BPMN.replace("CONDITION", "amount &gt; 100"))
    runtime = WorkflowRuntime()
    big = runtime.start("gw-good", spec_json, {"amount": 500})
    small = runtime.start("gw-good", spec_json, {"amount": 5})
    assert big.is_completed() and small.is_completed()
    ends_big = [t.task_spec.bpmn_id for t in big.get_tasks(state=TaskState.COMPLETED)]
    ends_small = [t.task_spec.bpmn_id for t in small.get_tasks(state=TaskState.COMPLETED)]
    assert "e1" in ends_big and "e2" not in ends_big
    assert "e2" in ends_small and "e1" not in ends_small


def test_script_task_refused_at_run_time(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    script = f"import os; os.system('touch {marker}')"
    spec_json = _unvetted_spec_json(SCRIPT_BPMN.replace("SCRIPT", script))
    with pytest.raises(WorkflowTaskException, match="script tasks are disabled"):
        WorkflowRuntime().start("script", spec_json, {})
    assert not marker.exists()


def test_runtime_never_uses_default_engine() -> None:
    spec_json = _unvetted_spec_json(GATEWAY_BPMN.replace("CONDITION", "True"))
    runtime = WorkflowRuntime()
    wf: BpmnWorkflow = runtime.start("engine", spec_json, {})
    assert isinstance(wf.script_engine, SandboxScriptEngine)
    restored = runtime.restore("engine", spec_json, runtime.dump(wf))
    assert isinstance(restored.script_engine, SandboxScriptEngine)
