"""Spec → form class: validation, conditional fields, drafts, and the JSON path."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from forms_testkit import MINIMAL, pnr
from werkzeug.datastructures import MultiDict

from forms.builder import bind_form, build_form_class, validate_data
from forms.mapping import draft_from_formdata, form_to_task_data, task_data_to_form_data
from forms.spec import FormSpec

pytestmark = pytest.mark.usefixtures("app")


def post(spec: FormSpec, pairs: dict[str, Any] | list[tuple[str, str]]) -> Any:
    """Bind the spec's form class to posted form data, as a browser would send it."""
    formdata: MultiDict[str, str] = MultiDict(pairs)
    return build_form_class(spec, "sv")(formdata=formdata)


def valid_html_post() -> dict[str, str]:
    return {"name": "Ana", "consent": "y", "risk": "low"}


def errors_for(spec: FormSpec, **changes: Any) -> dict[str, list[str]]:
    data, errors = validate_data(spec, {**MINIMAL, **changes}, "sv")
    assert (data == {}) == bool(errors)
    return errors


def test_minimal_html_post_is_valid(spec: FormSpec) -> None:
    form = post(spec, valid_html_post())
    assert form.validate(), form.errors
    data = form_to_task_data(spec, form)
    assert data == form.task_data()
    assert list(data) == list(spec.keys)
    assert data["name"] == "Ana"
    assert data["consent"] is True
    assert data["doubt"] is False
    assert data["needs"] == []
    assert data["age"] is None
    assert data["story"] is None
    assert data["needs_other"] is None


def test_every_declared_key_present_and_json_safe(spec: FormSpec) -> None:
    data, errors = validate_data(
        spec,
        {
            **MINIMAL,
            "country": "SE",
            "story": "  Berättelse\r\nrad två  ",
            "age": "17",
            "needs": ["other", "housing"],
            "needs_other": "Skydd",
            "source": "ngo",
            "met_on": "2024-02-29",
            "met_at": "2024-02-29T13:45",
            "pnr": "19121212-1212",
        },
        "sv",
    )
    assert errors == {}
    assert set(data) == set(spec.keys)
    assert data["age"] == 17 and isinstance(data["age"], int)
    assert data["story"] == "Berättelse\nrad två"
    assert data["needs"] == ["housing", "other"]  # declared order
    assert data["met_on"] == "2024-02-29"
    assert data["met_at"] == "2024-02-29T13:45"
    assert data["pnr"] == "191212121212"
    import json

    assert json.loads(json.dumps(data)) == data


def test_required(spec: FormSpec) -> None:
    errors = errors_for(spec, name="   ")
    assert "name" in errors
    errors = errors_for(spec, name=None, risk=None)
    assert {"name", "risk"} <= set(errors)


def test_required_checkbox_must_be_ticked(spec: FormSpec) -> None:
    assert "consent" in errors_for(spec, consent=False)
    form = post(spec, {**valid_html_post(), "consent": ""})
    assert not form.validate()
    assert "consent" in form.errors


def test_enum_reject(spec: FormSpec) -> None:
    assert "risk" in errors_for(spec, risk="medium")
    assert "source" in errors_for(spec, source="admin")
    assert "needs" in errors_for(spec, needs=["housing", "weapons"])
    form = post(spec, [*valid_html_post().items(), ("source", "<script>")])
    assert not form.validate()
    assert "source" in form.errors


def test_pattern_is_a_full_match(spec: FormSpec) -> None:
    assert "country" in errors_for(spec, country="se")
    assert "country" in errors_for(spec, country="SEX")
    assert "country" not in errors_for(spec, country="SE")


def test_max_length(spec: FormSpec) -> None:
    assert "name" in errors_for(spec, name="x" * 21)
    assert errors_for(spec, name="x" * 20) == {}


def test_default_length_cap_on_free_text(spec: FormSpec) -> None:
    assert "story" in errors_for(spec, story="x" * 20001)


@pytest.mark.parametrize(
    ("age", "ok"),
    [("0", True), (120, True), (-1, False), (121, False), ("tjugo", False), (1.5, True)],
)
def test_number_range(spec: FormSpec, age: Any, ok: bool) -> None:
    assert ("age" not in errors_for(spec, age=age)) is ok


def test_number_zero_satisfies_required(app: Flask) -> None:
    from forms.spec import load_form_spec

    spec = load_form_spec(
        {
            "id": "n",
            "components": [
                {"type": "number", "key": "n", "label": "N", "validate": {"required": True}}
            ],
        }
    )
    data, errors = validate_data(spec, {"n": 0}, "sv")
    assert errors == {} and data == {"n": 0}


@pytest.mark.parametrize("bad", ["2025-02-30", "2025-13-01", "30/01/2025", "igår"])
def test_bad_date(spec: FormSpec, bad: str) -> None:
    assert "met_on" in errors_for(spec, met_on=bad)


def test_bad_datetime(spec: FormSpec) -> None:
    assert "met_at" in errors_for(spec, met_at="2025-02-30T10:00")


def test_personnummer(spec: FormSpec) -> None:
    good = pnr("850315", "123")
    data, errors = validate_data(spec, {**MINIMAL, "pnr": good[:6] + "-" + good[6:]}, "sv")
    assert errors == {} and data["pnr"] == "19" + good
    bad_luhn = good[:-1] + str((int(good[-1]) + 1) % 10)
    assert "pnr" in errors_for(spec, pnr=bad_luhn)
    assert "pnr" in errors_for(spec, pnr=pnr("850230", "123"))
    samordning = pnr("850375", "123")
    data, errors = validate_data(spec, {**MINIMAL, "pnr": samordning}, "sv")
    assert errors == {} and data["pnr"] == "19" + samordning


def test_checklist(spec: FormSpec) -> None:
    form = post(
        spec,
        [
            *valid_html_post().items(),
            ("needs", "health"),
            ("needs", "housing"),
            ("needs", "health"),
        ],
    )
    assert form.validate(), form.errors
    assert form.task_data()["needs"] == ["housing", "health"]


def test_extra_keys_are_ignored(spec: FormSpec) -> None:
    hostile = {
        "role": "supervisor",
        "unit_id": 2,
        "assignee": "me",
        "csrf_token": "x",
        "approved": True,
    }
    data, errors = validate_data(spec, {**MINIMAL, **hostile}, "sv")
    assert errors == {}
    assert set(data) == set(spec.keys)
    form = post(spec, {**valid_html_post(), **{k: str(v) for k, v in hostile.items()}})
    assert form.validate()
    assert set(form.task_data()) == set(spec.keys)
    assert not hasattr(form, "role") and not hasattr(form, "unit_id")
    assert set(draft_from_formdata(spec, MultiDict(hostile))) == set(spec.keys)


def test_conditional_hide_removes_requirement(spec: FormSpec) -> None:
    # needs_other is required, but hidden unless "other" is ticked.
    assert "needs_other" not in errors_for(spec, needs=["housing"])
    assert "needs_other" in errors_for(spec, needs=["other"])
    assert errors_for(spec, needs=["other"], needs_other="Skydd") == {}


def test_hidden_field_is_stored_empty(spec: FormSpec) -> None:
    data, errors = validate_data(
        spec, {**MINIMAL, "needs": ["housing"], "needs_other": "kvar"}, "sv"
    )
    assert errors == {} and data["needs_other"] is None
    form = post(
        spec, {**valid_html_post(), "needs_other": "x" * 5000}
    )  # hidden: not even length-checked
    assert form.validate(), form.errors
    assert form.task_data()["needs_other"] is None


def test_draft_keeps_invalid_input_as_typed(spec: FormSpec) -> None:
    typed = MultiDict(
        [
            ("name", "  Ana  "),
            ("age", "tjugo"),
            ("met_on", "2025-02-30"),
            ("pnr", "12345"),
            ("needs", "other"),
            ("needs", "forged"),
            ("risk", "forged"),
            ("consent", "y"),
            ("role", "admin"),
        ]
    )
    draft = draft_from_formdata(spec, typed)
    assert set(draft) == set(spec.keys)
    assert draft["name"] == "  Ana  "
    assert draft["age"] == "tjugo"
    assert draft["met_on"] == "2025-02-30"
    assert draft["pnr"] == "12345"
    assert draft["needs"] == ["other"]
    assert draft["risk"] is None
    assert draft["consent"] is True and draft["doubt"] is False
    # The draft prefills the form, which shows the invalid text again.
    form = bind_form(spec, "sv", task_data=draft)
    assert form.age._value() == "tjugo"
    assert form.met_on._value() == "2025-02-30"
    assert form.needs.data == ["other"]


def test_binding_does_not_validate(spec: FormSpec) -> None:
    form = bind_form(spec, "sv", formdata=MultiDict({"age": "x"}))
    assert form.errors == {}


def test_prefill_from_task_data_round_trips(spec: FormSpec) -> None:
    stored, errors = validate_data(
        spec,
        {**MINIMAL, "age": 3.5, "pnr": "191212121212", "met_on": "2024-01-02", "needs": ["health"]},
        "sv",
    )
    assert errors == {}
    formdata = task_data_to_form_data(spec, stored)
    assert formdata["pnr"] == "19121212-1212"
    assert formdata["consent"] == "y"
    assert "doubt" not in formdata
    form = build_form_class(spec, "sv")(formdata=formdata)
    assert form.validate(), form.errors
    assert form.task_data() == stored


def test_validate_data_returns_field_errors(spec: FormSpec) -> None:
    data, errors = validate_data(spec, {"age": "x", "risk": "nope"}, "sv")
    assert data == {}
    assert set(errors) >= {"name", "consent", "risk", "age"}
    assert all(isinstance(m, str) and m for ms in errors.values() for m in ms)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("name", ["a"]),
        ("consent", "yes"),
        ("needs", "housing"),
        ("needs", [1]),
        ("age", True),
        ("age", {}),
    ],
)
def test_validate_data_json_types(spec: FormSpec, key: str, value: Any) -> None:
    assert key in errors_for(spec, **{key: value})


def test_validate_data_rejects_non_object(spec: FormSpec) -> None:
    data, errors = validate_data(spec, ["x"], "sv")  # type: ignore[arg-type]
    assert data == {} and errors


def test_validate_data_needs_no_csrf_token(csrf_app: Flask, spec: FormSpec) -> None:
    assert validate_data(spec, MINIMAL, "sv")[1] == {}
    form = post(spec, valid_html_post())  # the HTML form still needs one
    assert not form.validate()
    assert "csrf_token" in form.errors


def test_labels_in_language(spec: FormSpec) -> None:
    sv = build_form_class(spec, "sv")()
    en = build_form_class(spec, "en")()
    assert sv.age.label.text == "Ålder" and en.age.label.text == "Age"
    assert {c.value: c.label for c in en.risk.choices}["high"] == "High"
    assert en.name.description == "As in the passport"
    assert build_form_class(spec, "sv") is build_form_class(spec, "sv")  # cached


def test_conditions_see_hidden_fields_as_empty(app: Flask) -> None:
    pytest.importorskip("engine.workflow.expressions")
    from forms.spec import load_form_spec

    chained = load_form_spec(
        {
            "id": "c",
            "components": [
                {"type": "checkbox", "key": "a", "label": "A"},
                {"type": "textfield", "key": "b", "label": "B", "conditional": {"hide": "not a"}},
                {
                    "type": "textfield",
                    "key": "c",
                    "label": "C",
                    "validate": {"required": True},
                    "conditional": {"hide": "not b"},
                },
            ],
        }
    )
    # b has a value but is hidden (a unticked), so c sees b as empty and is hidden too.
    data, errors = validate_data(chained, {"a": False, "b": "x"}, "sv")
    assert errors == {} and data == {"a": False, "b": None, "c": None}
    assert "c" in validate_data(chained, {"a": True, "b": "x"}, "sv")[1]
