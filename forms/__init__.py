"""Forms: Flask-WTF forms built from form specs (bpmn/*/forms/*.json), and hand-written forms.

`spec` parses and checks specs, `builder` turns a spec into a form class (and validates JSON with
it), `mapping` moves values between forms, task data and drafts, `fields` holds the field types.
"""

from forms.builder import SpecForm, bind_form, build_form_class, validate_data
from forms.mapping import (
    draft_from_formdata,
    form_to_task_data,
    json_to_form_data,
    task_data_to_form_data,
)
from forms.spec import (
    Component,
    FormSpec,
    FormSpecError,
    hidden_keys,
    label_for,
    load_form_spec,
    load_form_spec_file,
)

__all__ = [
    "Component",
    "FormSpec",
    "FormSpecError",
    "SpecForm",
    "bind_form",
    "build_form_class",
    "draft_from_formdata",
    "form_to_task_data",
    "hidden_keys",
    "json_to_form_data",
    "label_for",
    "load_form_spec",
    "load_form_spec_file",
    "task_data_to_form_data",
    "validate_data",
]
