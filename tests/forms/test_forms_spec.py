"""Loading and checking form specs."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from forms_testkit import SAMPLE

from forms.spec import FormSpec, FormSpecError, LocalText, label_for, load_form_spec


def problems_of(data: Any) -> list[str]:
    with pytest.raises(FormSpecError) as info:
        load_form_spec(data)
    return info.value.problems


def with_component(component: dict[str, Any]) -> dict[str, Any]:
    return {"id": "f", "components": [component]}


def test_sample_loads(spec: FormSpec) -> None:
    assert spec.id == "sample_form"
    assert spec.title_for("en") == "Sample"
    assert spec.keys[:3] == ("name", "country", "story")
    assert "needs_other" in spec.keys
    assert len(spec.keys) == len(spec.components) - 1  # one static text
    assert spec.sensitive_keys == frozenset({"story"})
    assert spec.subject_fields == {"name": "name"}
    assert spec.component("risk").type == "radio"
    assert spec.option_label("risk", "high", "en") == "High"
    assert spec.option_label("risk", "high", "sv") == "Hög"
    assert spec.option_label("risk", "nope", "sv") == "nope"
    assert spec.option_label("risk", None, "sv") == ""
    with pytest.raises(KeyError):
        spec.component("role")


def test_spec_is_hashable_and_immutable(spec: FormSpec) -> None:
    hash(spec)
    with pytest.raises(AttributeError):
        spec.id = "x"  # type: ignore[misc]


def test_label_for_fallbacks() -> None:
    assert label_for("plain", "en") == "plain"
    assert label_for({"sv": "Ja", "en": "Yes"}, "en") == "Yes"
    assert label_for({"sv": "Ja", "en": "Yes"}, "de") == "Ja"
    assert label_for({"en": "Yes"}, "sv") == "Yes"
    assert label_for({"sv": "", "en": "Yes"}, "sv") == "Yes"
    assert label_for(LocalText(sv="Ja"), "en") == "Ja"
    assert label_for(None, "sv") == ""


def test_text_blocks(spec: FormSpec) -> None:
    blocks = spec.components[0].text_blocks("sv")
    assert blocks == (("h2", "Rubrik"), ("p", "Hjälptext <b>fet</b>"))


def test_unknown_type() -> None:
    assert any("unknown type" in p for p in problems_of(with_component({"type": "html"})))


def test_missing_and_duplicate_keys() -> None:
    data = {
        "id": "f",
        "components": [
            {"type": "textfield", "label": "A"},
            {"type": "textfield", "key": "a", "label": "A"},
            {"type": "number", "key": "a", "label": "A"},
        ],
    }
    problems = problems_of(data)
    assert any("missing key" in p for p in problems)
    assert any("duplicate key 'a'" in p for p in problems)


@pytest.mark.parametrize(
    "key", ["role", "Data", "csrf_token", "data", "validate_x", "class", "a.b", "_x", "len"]
)
def test_bad_or_reserved_keys(key: str) -> None:
    if key == "role":  # an ordinary key is fine; the form never binds undeclared names
        load_form_spec(with_component({"type": "textfield", "key": key, "label": "A"}))
        return
    assert problems_of(with_component({"type": "textfield", "key": key, "label": "A"}))


@pytest.mark.parametrize(
    "values",
    [
        None,
        [],
        "a,b",
        [{"value": "a", "label": "A"}, {"value": "a", "label": "A2"}],
        [{"value": 1, "label": "One"}],
        [{"value": "", "label": "Empty"}],
        [{"value": "a"}],
    ],
)
def test_bad_values(values: Any) -> None:
    component = {"type": "select", "key": "s", "label": "S", "values": values}
    assert problems_of(with_component(component))


def test_values_on_a_textfield_refused() -> None:
    component = {
        "type": "textfield",
        "key": "t",
        "label": "T",
        "values": [{"value": "a", "label": "A"}],
    }
    assert problems_of(with_component(component))


@pytest.mark.parametrize(
    ("ctype", "validate"),
    [
        ("textfield", {"requird": True}),
        ("textfield", {"required": "yes"}),
        ("textfield", {"maxLength": -1}),
        ("textfield", {"maxLength": 1.5}),
        ("textfield", {"minLength": 5, "maxLength": 2}),
        ("textfield", {"pattern": "(unclosed"}),
        ("textfield", {"min": 1}),
        ("number", {"min": "1"}),
        ("number", {"min": 5, "max": 1}),
        ("number", {"pattern": "x"}),
        ("checkbox", {"maxLength": 3}),
        ("textfield", "required"),
    ],
)
def test_bad_validate_rules(ctype: str, validate: Any) -> None:
    assert problems_of(
        with_component({"type": ctype, "key": "k", "label": "K", "validate": validate})
    )


def test_labels_checked() -> None:
    assert problems_of(with_component({"type": "textfield", "key": "k"}))
    assert problems_of(with_component({"type": "textfield", "key": "k", "label": {"de": "X"}}))
    assert problems_of(with_component({"type": "textfield", "key": "k", "label": {"sv": 3}}))
    assert problems_of(with_component({"type": "text"}))


def test_subject_field_checked() -> None:
    bad = {"type": "textfield", "key": "k", "label": "K", "subjectField": "role"}
    assert problems_of(with_component(bad))
    wrong_type = {"type": "textfield", "key": "k", "label": "K", "subjectField": "personnummer"}
    assert problems_of(with_component(wrong_type))


def test_all_problems_reported_at_once() -> None:
    data = copy.deepcopy(SAMPLE)
    data["components"].append({"type": "iframe"})
    data["components"].append({"type": "number", "key": "name", "label": "Dup"})
    problems = problems_of(data)
    assert len(problems) >= 2


def test_not_an_object() -> None:
    assert problems_of({"id": "", "components": "x"})
    assert problems_of([])


# --- conditional.hide needs the engine's expression sandbox --------------------------------


@pytest.fixture
def expressions() -> None:
    pytest.importorskip("engine.workflow.expressions")


def hide_spec(expr: str) -> dict[str, Any]:
    return {
        "id": "f",
        "components": [
            {"type": "checkbox", "key": "flag", "label": "Flag"},
            {"type": "textfield", "key": "t", "label": "T", "conditional": {"hide": expr}},
        ],
    }


@pytest.mark.usefixtures("expressions")
@pytest.mark.parametrize(
    "expr",
    [
        "__import__('os').system('id')",
        "flag.__class__",
        "(lambda: 1)()",
        "open('/etc/passwd')",
        "flag ==",
    ],
)
def test_unsafe_hide_expression_refused(expr: str) -> None:
    problems = problems_of(hide_spec(expr))
    assert any("conditional.hide" in p for p in problems)


@pytest.mark.usefixtures("expressions")
def test_hide_expression_naming_unknown_key_refused() -> None:
    problems = problems_of(hide_spec("not role"))
    assert any("'role'" in p for p in problems)


@pytest.mark.usefixtures("expressions")
def test_good_hide_expression_accepted() -> None:
    spec = load_form_spec(hide_spec("not flag"))
    assert spec.component("t").hide == "not flag"
    assert load_form_spec(hide_spec("=not flag")).component("t").hide == "not flag"


def test_spec_without_conditions_needs_no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> Any:
        raise ImportError("engine absent")

    monkeypatch.setattr("forms.spec._expressions", boom)
    data = copy.deepcopy(SAMPLE)
    for component in data["components"]:
        component.pop("conditional", None)
    assert load_form_spec(data).keys
