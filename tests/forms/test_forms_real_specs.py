"""Every form spec shipped in bpmn/ loads, renders and accepts a minimal valid input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from forms_testkit import ROOT, render
from werkzeug.datastructures import MultiDict

from forms.builder import build_form_class, validate_data
from forms.mapping import task_data_to_form_data
from forms.spec import Component, FormSpec, load_form_spec_file

SPEC_FILES = sorted(ROOT.glob("bpmn/*/forms/*.json"))

pytestmark = [
    pytest.mark.usefixtures("app"),
    pytest.mark.skipif(not SPEC_FILES, reason="no form specs in bpmn/ yet"),
]


def sample_value(component: Component) -> Any:
    """A valid value for a required field."""
    rules = component.validate
    match component.type:
        case "textfield" | "textarea":
            return "x" * max(rules.min_length or 1, 1)
        case "number":
            return rules.min if rules.min is not None else 1
        case "checkbox":
            return True
        case "checklist":
            return [component.values[0].value]
        case "radio" | "select":
            return component.values[0].value
        case "date":
            return "2024-01-15"
        case "datetime":
            return "2024-01-15T10:30"
        case "personnummer":
            return "19121212-1212"
    raise AssertionError(component.type)


def minimal_input(spec: FormSpec) -> dict[str, Any]:
    return {c.key: sample_value(c) for c in spec.fields if c.key is not None and c.required}


@pytest.fixture(params=SPEC_FILES, ids=[f"{p.parent.parent.name}/{p.name}" for p in SPEC_FILES])
def real_spec(request: pytest.FixtureRequest) -> FormSpec:
    pytest.importorskip("engine.workflow.expressions")
    path: Path = request.param
    spec = load_form_spec_file(path)
    assert spec.id == path.stem
    return spec


def test_loads_and_renders(real_spec: FormSpec) -> None:
    for lang in ("sv", "en"):
        form = build_form_class(real_spec, lang)()
        html = render(
            "{{ fields.render_form(form, spec, lang) }}", form=form, spec=real_spec, lang=lang
        )
        for key in real_spec.keys:
            assert f'data-key="{key}"' in html
        for component in real_spec.fields:
            if component.hide:
                assert "data-hide-if=" in html


def test_minimal_valid_input(real_spec: FormSpec) -> None:
    data, errors = validate_data(real_spec, minimal_input(real_spec), "sv")
    assert errors == {}
    assert list(data) == list(real_spec.keys)


def test_empty_input_reports_required_fields(real_spec: FormSpec) -> None:
    data, errors = validate_data(real_spec, {}, "sv")
    if any(c.required and not c.hide for c in real_spec.fields):
        assert errors and data == {}
        assert set(errors) <= set(real_spec.keys)


def test_html_post_round_trip(real_spec: FormSpec) -> None:
    stored, errors = validate_data(real_spec, minimal_input(real_spec), "sv")
    assert errors == {}
    formdata: MultiDict[str, str] = task_data_to_form_data(real_spec, stored)
    formdata.add("role", "supervisor")
    form = build_form_class(real_spec, "sv")(formdata=formdata)
    assert form.validate(), form.errors
    assert form.task_data() == stored
