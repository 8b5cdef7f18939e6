"""Form ↔ task data: the only road from a posted form (or JSON) into task data, and back.

Task data holds only declared keys, every one of them, with JSON-safe values: empty scalars are
`None`, an empty checklist `[]`, an unticked checkbox `False`; dates are ISO strings, numbers int or
float, a personnummer its 12 digits. Drafts keep the text exactly as typed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Protocol

from werkzeug.datastructures import MultiDict
from wtforms import Field

from forms.fields import format_personnummer
from forms.spec import Component, FormSpec, hidden_keys

_TEXT_TYPES = frozenset(
    {"textfield", "textarea", "date", "datetime", "personnummer", "radio", "select"}
)


class _FormLike(Protocol):
    def __getitem__(self, name: str) -> Field: ...


class _MultiValued(Protocol):
    def getlist(self, key: str) -> list[Any]: ...

    def __contains__(self, key: object) -> bool: ...


def field_value(component: Component, field: Field) -> Any:
    """The task-data value of one bound field (empty when its input did not parse)."""
    data = None if field.process_errors else field.data
    ctype = component.type
    if ctype == "checkbox":
        return bool(data)
    if ctype == "checklist":
        chosen = set(data or ())
        return [option.value for option in component.values if option.value in chosen]
    if ctype in ("radio", "select"):
        return data if isinstance(data, str) and data in component.value_set else None
    if ctype == "number":
        return data if isinstance(data, int | float) and not isinstance(data, bool) else None
    if ctype == "datetime":
        if isinstance(data, datetime):
            return data.isoformat(timespec="minutes" if data.second == 0 else "seconds")
        return None
    if ctype == "date":
        return data.isoformat() if isinstance(data, date) else None
    if isinstance(data, str):
        return data.strip() or None
    return None


def form_to_task_data(spec: FormSpec, form: _FormLike) -> dict[str, Any]:
    """Task data from a bound form: every declared key, hidden fields emptied.

    Validate the form first: a value that failed to parse comes out empty here.
    """
    values = {c.key: field_value(c, form[c.key]) for c in spec.fields if c.key is not None}
    for key in hidden_keys(spec, values):
        values[key] = spec.component(key).empty_value
    return values


def task_data_to_form_data(spec: FormSpec, data: Mapping[str, Any]) -> MultiDict[str, str]:
    """Form data that prefills a form from stored task data or from a draft."""
    formdata: MultiDict[str, str] = MultiDict()
    for component in spec.fields:
        key = component.key
        assert key is not None
        value = data.get(key)
        if value is None:
            continue
        if component.type == "checklist":
            items = value if isinstance(value, list | tuple) else [value]
            for item in items:
                if isinstance(item, str):
                    formdata.add(key, item)
        elif component.type == "checkbox":
            if value is True or value in ("y", "on", "true"):
                formdata.add(key, "y")
        elif component.type == "personnummer" and isinstance(value, str):
            formdata.add(key, format_personnummer(value))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, str | int | float):
            formdata.add(key, str(value))
    return formdata


def json_to_form_data(
    spec: FormSpec, data: Mapping[str, Any]
) -> tuple[MultiDict[str, str], dict[str, str]]:
    """Form data from a JSON object (declared keys only), and {key: error} for wrong JSON types."""
    formdata: MultiDict[str, str] = MultiDict()
    errors: dict[str, str] = {}
    for component in spec.fields:
        key = component.key
        assert key is not None
        if key not in data or data[key] is None:
            continue
        value = data[key]
        ctype = component.type
        if ctype == "checkbox":
            if not isinstance(value, bool):
                errors[key] = "Expected true or false."
            elif value:
                formdata.add(key, "y")
        elif ctype == "checklist":
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                errors[key] = "Expected a list of strings."
            else:
                for item in value:
                    formdata.add(key, item)
        elif ctype == "number":
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                errors[key] = "Expected a number."
            else:
                formdata.add(key, str(value))
        elif ctype in _TEXT_TYPES:
            if not isinstance(value, str):
                errors[key] = "Expected a string."
            else:
                formdata.add(key, value)
    return formdata, errors


def draft_from_formdata(
    spec: FormSpec, formdata: _MultiValued | Mapping[str, Any]
) -> dict[str, Any]:
    """A draft: what the user typed for each declared key, unvalidated, so nothing is lost.

    Text stays exactly as typed (even when invalid); a checkbox becomes a bool; fixed-choice fields
    keep only declared values (anything else cannot have been typed, only forged).
    """
    draft: dict[str, Any] = {}
    for component in spec.fields:
        key = component.key
        assert key is not None
        values = [v if isinstance(v, str) else str(v) for v in _getlist(formdata, key)]
        if component.type == "checkbox":
            draft[key] = bool(values) and values[0] not in ("", "false")
        elif component.type == "checklist":
            chosen = set(values)
            draft[key] = [o.value for o in component.values if o.value in chosen]
        elif component.type in ("radio", "select"):
            draft[key] = values[0] if values and values[0] in component.value_set else None
        else:
            draft[key] = values[0] if values else None
    return draft


def _getlist(formdata: _MultiValued | Mapping[str, Any], key: str) -> list[Any]:
    if hasattr(formdata, "getlist"):
        return list(formdata.getlist(key))
    assert isinstance(formdata, Mapping)
    value = formdata.get(key)
    if value is None:
        return []
    if isinstance(value, bool):
        return ["y"] if value else []
    return list(value) if isinstance(value, list | tuple) else [value]
