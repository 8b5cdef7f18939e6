"""static/js/forms.js agrees with the server on every condition it understands (needs node)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest
from forms_testkit import ROOT, SAMPLE

from forms.spec import FormSpec, load_form_spec, load_form_spec_file

NODE = shutil.which("node")
SCRIPT = ROOT / "webapp" / "static" / "js" / "forms.js"

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")

HARNESS = """
const fs = require("fs");
globalThis.document = {
  readyState: "complete", querySelectorAll: () => [], querySelector: () => null,
};
const source = fs.readFileSync(process.argv[1], "utf8")
  .replace("function init() {", "globalThis.__parse = parse; function init() {");
(0, eval)(source);
const cases = JSON.parse(fs.readFileSync(0, "utf8"));
const out = cases.map(([expr, values]) => {
  const test = globalThis.__parse(expr);
  return test === null ? null : test(values);
});
process.stdout.write(JSON.stringify(out));
"""


def run_js(cases: list[tuple[str, dict[str, Any]]]) -> list[bool | None]:
    assert NODE is not None
    result = subprocess.run(
        [NODE, "-e", HARNESS, str(SCRIPT)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    parsed: list[bool | None] = json.loads(result.stdout)
    return parsed


def value_variants(spec: FormSpec) -> list[dict[str, Any]]:
    """Empty data, and data with each choice / flag set in turn."""
    base = spec.empty_data()
    variants = [base]
    for component in spec.fields:
        assert component.key is not None
        if component.type == "checkbox":
            variants.append({**base, component.key: True})
        elif component.type == "checklist":
            variants += [{**base, component.key: [o.value]} for o in component.values]
        elif component.type in ("radio", "select"):
            variants += [{**base, component.key: o.value} for o in component.values]
    return variants


def specs() -> list[FormSpec]:
    pytest.importorskip("engine.workflow.expressions")
    files = sorted(ROOT.glob("bpmn/*/forms/*.json"))
    return [load_form_spec(SAMPLE), *(load_form_spec_file(p) for p in files)]


def test_js_matches_server_conditions() -> None:
    from engine.workflow.expressions import evaluate

    cases: list[tuple[str, dict[str, Any]]] = []
    expected: list[bool] = []
    for spec in specs():
        for component in spec.fields:
            if component.hide is None:
                continue
            for values in value_variants(spec):
                cases.append((component.hide, values))
                try:
                    expected.append(bool(evaluate(component.hide, values)))
                except Exception:
                    expected.append(False)  # the server keeps such a field visible
    results = run_js(cases)
    for (expr, values), want, got in zip(cases, expected, results, strict=True):
        if got is None:
            continue  # not understood: the field stays visible, the server decides
        assert got == want, (expr, values)


@pytest.mark.parametrize(
    "expr",
    ["__import__('os')", "a.b == 1", "a == b", "x if y else z", "a and b", "len(a) > 0", ""],
)
def test_js_leaves_unknown_expressions_alone(expr: str) -> None:
    assert run_js([(expr, {"a": 1, "b": 1})]) == [None]


def test_js_simple_forms() -> None:
    cases: list[tuple[str, dict[str, Any]]] = [
        ("k == 'v'", {"k": "v"}),
        ("k != 'v'", {"k": "v"}),
        ("'v' in k", {"k": ["v"]}),
        ("not k", {"k": []}),
        ("k", {"k": ""}),
        ("k == True", {"k": True}),
    ]
    assert run_js(cases) == [True, False, True, True, False, True]
