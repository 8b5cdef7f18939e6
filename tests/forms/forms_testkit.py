"""Helpers and sample data for the forms tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import render_template_string

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "webapp" / "templates"


def luhn_digit(nine: str) -> str:
    """The check digit that makes `nine` + digit pass the Luhn test."""
    total = 0
    for index, char in enumerate(nine):
        product = int(char) * (2 if index % 2 == 0 else 1)
        total += product - 9 if product > 9 else product
    return str((10 - total % 10) % 10)


def pnr(yymmdd: str, serial3: str) -> str:
    """A 10-digit personnummer with a correct check digit."""
    return yymmdd + serial3 + luhn_digit(yymmdd + serial3)


def render(template: str, **context: Any) -> str:
    source = '{% import "forms/_fields.html" as fields %}' + template
    return render_template_string(source, **context)


SAMPLE: dict[str, Any] = {
    "id": "sample_form",
    "title": {"sv": "Exempel", "en": "Sample"},
    "components": [
        {"type": "text", "text": {"sv": "# Rubrik\n\nHjälptext <b>fet</b>", "en": "# Heading"}},
        {
            "type": "textfield",
            "key": "name",
            "label": {"sv": "Namn", "en": "Name"},
            "description": {"sv": "Som i passet", "en": "As in the passport"},
            "validate": {"required": True, "maxLength": 20},
            "subjectField": "name",
        },
        {
            "type": "textfield",
            "key": "country",
            "label": "Land",
            "validate": {"pattern": "[A-Z]{2}"},
        },
        {"type": "textarea", "key": "story", "label": "Berättelse", "sensitive": True},
        {
            "type": "number",
            "key": "age",
            "label": {"sv": "Ålder", "en": "Age"},
            "validate": {"min": 0, "max": 120},
        },
        {"type": "checkbox", "key": "consent", "label": "Samtycke", "validate": {"required": True}},
        {"type": "checkbox", "key": "doubt", "label": "Tveksam ålder"},
        {
            "type": "checklist",
            "key": "needs",
            "label": "Behov",
            "values": [
                {"value": "housing", "label": {"sv": "Boende", "en": "Housing"}},
                {"value": "health", "label": {"sv": "Vård", "en": "Health"}},
                {"value": "other", "label": {"sv": "Annat", "en": "Other"}},
            ],
        },
        {
            "type": "textfield",
            "key": "needs_other",
            "label": "Annat behov",
            "validate": {"required": True},
            "conditional": {"hide": "'other' not in needs"},
        },
        {
            "type": "radio",
            "key": "risk",
            "label": {"sv": "Risk", "en": "Risk"},
            "values": [
                {"value": "low", "label": {"sv": "Låg", "en": "Low"}},
                {"value": "high", "label": {"sv": "Hög", "en": "High"}},
            ],
            "validate": {"required": True},
        },
        {
            "type": "select",
            "key": "source",
            "label": "Källa",
            "values": [
                {"value": "police", "label": "Polisen"},
                {"value": "ngo", "label": "Organisation"},
            ],
        },
        {"type": "date", "key": "met_on", "label": "Datum"},
        {"type": "datetime", "key": "met_at", "label": "Tidpunkt"},
        {"type": "personnummer", "key": "pnr", "label": "Personnummer"},
    ],
}

#: The smallest input SAMPLE accepts.
MINIMAL: dict[str, Any] = {"name": "Ana", "consent": True, "risk": "low"}
