"""Build a Flask-WTF form class from a form spec, and validate JSON input with the same class.

One class serves the HTML form, the draft save (bind without validating) and the JSON API, so
there is one definition of "valid". Only declared keys are fields: anything else a client posts is
never bound, and so never reaches task data.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import BooleanField, Field, RadioField, SelectChoice, SelectField, TextAreaField

from forms.fields import (
    AllowedValues,
    FullMatch,
    IsoDateField,
    IsoDateTimeField,
    LengthBetween,
    MultiCheckboxField,
    NumberBetween,
    NumberField,
    OptionalValue,
    PersonnummerField,
    Required,
    TrimmedStringField,
    strip_text,
)
from forms.spec import Component, FormSpec, FormSpecError, hidden_keys, label_for


class SpecForm(FlaskForm):  # type: ignore[misc]
    """Base of every spec-built form: conditional fields, and task data out."""

    spec: FormSpec
    lang: str

    def hidden_keys(self) -> frozenset[str]:
        """The keys hidden by their condition, judged on the bound (submitted) values."""
        from forms.mapping import field_value

        values = {c.key: field_value(c, self[c.key]) for c in self.spec.fields if c.key is not None}
        return hidden_keys(self.spec, values)

    def validate(self, extra_validators: Mapping[str, Any] | None = None) -> bool:
        """Validate the visible fields; a field hidden by its condition is skipped and emptied."""
        hidden = self.hidden_keys()
        self._errors = None
        self.form_errors: list[str] = []
        success = True
        for name, field in self._fields.items():
            if name in hidden:
                field.errors = []
                field.data = self.spec.component(name).empty_value
                continue
            chain = list(extra_validators.get(name, ())) if extra_validators else []
            inline = getattr(self.__class__, f"validate_{name}", None)
            if inline is not None:
                chain.append(inline)
            if not field.validate(self, chain):
                success = False
        return success

    def task_data(self) -> dict[str, Any]:
        """Task data for every declared key (call after `validate()` returned True)."""
        from forms.mapping import form_to_task_data

        return form_to_task_data(self.spec, self)


def _validators(component: Component) -> list[Any]:
    rules = component.validate
    chain: list[Any] = [Required() if rules.required else OptionalValue()]
    if component.type in ("textfield", "textarea"):
        chain.append(LengthBetween(rules.min_length, component.max_length))
        if rules.pattern is not None:
            chain.append(FullMatch(rules.pattern))
    elif component.type == "number":
        chain.append(NumberBetween(rules.min, rules.max))
    elif component.type in ("radio", "select", "checklist"):
        chain.append(AllowedValues([option.value for option in component.values]))
    return chain


def _field(component: Component, lang: str) -> Field:
    label = component.label_text(lang)
    options: dict[str, Any] = {
        "label": label,
        "description": component.description_text(lang),
        "validators": _validators(component),
    }
    if component.validate.required and component.type not in ("radio", "checklist"):
        # (a radio or checklist group says "required" in its legend; its inputs may not)
        options["render_kw"] = {"aria-required": "true"}
    choices = [
        SelectChoice(option.value, label_for(option.label, lang)) for option in component.values
    ]
    match component.type:
        case "textfield":
            return TrimmedStringField(**options)
        case "textarea":
            return TextAreaField(filters=[strip_text], **options)
        case "number":
            kw = {"inputmode": "decimal", **options.pop("render_kw", {})}
            return NumberField(render_kw=kw, **options)
        case "checkbox":
            return BooleanField(**options)
        case "checklist":
            return MultiCheckboxField(choices=choices, **options)
        case "radio":
            return RadioField(choices=choices, validate_choice=False, **options)
        case "select":
            placeholder = SelectChoice("", f"— {_choose(lang)} —")
            return SelectField(choices=[placeholder, *choices], validate_choice=False, **options)
        case "date":
            return IsoDateField(**options)
        case "datetime":
            return IsoDateTimeField(**options)
        case "personnummer":
            kw = {"inputmode": "numeric", "autocomplete": "off", **options.pop("render_kw", {})}
            return PersonnummerField(render_kw=kw, **options)
    raise FormSpecError([f"{component.key}: no field for type {component.type!r}"])


def _choose(lang: str) -> str:
    return "Choose" if lang == "en" else "Välj"


@lru_cache(maxsize=256)
def build_form_class(spec: FormSpec, lang: str) -> type[SpecForm]:
    """A FlaskForm subclass with one field per declared key of `spec`, labelled in `lang`.

    Cached per (spec, lang): a `FormSpec` is immutable and hashable.
    """
    attrs: dict[str, Any] = {"spec": spec, "lang": lang}
    clashes = [c.key for c in spec.fields if c.key is not None and hasattr(SpecForm, c.key)]
    if clashes:
        raise FormSpecError([f"key {key!r} clashes with a form attribute" for key in clashes])
    for component in spec.fields:
        assert component.key is not None
        attrs[component.key] = _field(component, lang)
    name = "".join(part.title() for part in spec.id.replace("-", "_").split("_")) or "Spec"
    return type(f"{name}Form", (SpecForm,), attrs)


def bind_form(
    spec: FormSpec,
    lang: str,
    *,
    formdata: MultiDict[str, Any] | None = None,
    task_data: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> SpecForm:
    """An instance bound to posted `formdata`, or prefilled from stored `task_data`/a draft.

    Binding never validates: call `validate()` to check a completion; a draft is saved with
    `forms.mapping.draft_from_formdata` and needs no validation at all.
    """
    from forms.mapping import task_data_to_form_data

    form_class = build_form_class(spec, lang)
    if formdata is None and task_data is not None:
        formdata = task_data_to_form_data(spec, task_data)
    kwargs: dict[str, Any] = {"meta": dict(meta)} if meta else {}
    if formdata is not None:
        return form_class(formdata=formdata, **kwargs)
    return form_class(**kwargs)


def validate_data(
    spec: FormSpec, data: Mapping[str, Any], lang: str
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Validate JSON input exactly as the HTML form is validated.

    Returns (task data, {}) when valid, or ({}, field errors) when not. Keys the spec does not
    declare are ignored; a declared key with a JSON value of the wrong type is a field error.
    """
    from forms.mapping import form_to_task_data, json_to_form_data

    if not isinstance(data, Mapping):
        return {}, {"": ["The request body must be a JSON object."]}
    formdata, type_errors = json_to_form_data(spec, data)
    form = build_form_class(spec, lang)(formdata=formdata, meta={"csrf": False})
    valid = form.validate()
    errors: dict[str, list[str]] = {
        name: [str(message) for message in field.errors]
        for name, field in form._fields.items()
        if field.errors
    }
    for key, message in type_errors.items():
        errors[key] = [message]
    if errors or not valid:
        return {}, errors
    return form_to_task_data(spec, form), {}
