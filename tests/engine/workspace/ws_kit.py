"""Helpers of the workspace engine tests (no tests here): the bundled procedures as files,
edited copies of them, and the form builder's validator for the checker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.processes import ProcedureFiles, read_procedure_folder
from forms.spec import FormSpecError, load_form_spec

ROOT = Path(__file__).resolve().parents[3]
BPMN_DIR = ROOT / "bpmn"
CORPUS = ROOT.parent / "shared" / "bpmn-corpus"


def validate_form(spec: Mapping[str, Any]) -> Sequence[str]:
    """The form builder's rules, as the web app hands them to the checker."""
    try:
        load_form_spec(spec)
    except FormSpecError as exc:
        return exc.problems
    return []


def procedure(process_id: str) -> ProcedureFiles:
    """A bundled procedure's model and forms, as they lie in ``bpmn/``."""
    return read_procedure_folder(BPMN_DIR / process_id)


def edited(process_id: str, old: str, new: str, count: int = 1) -> str:
    """The procedure's BPMN with one small edit (fails loudly when ``old`` is not there)."""
    text = procedure(process_id).bpmn_xml.decode("utf-8")
    assert old in text, f"{old!r} is not in {process_id}.bpmn"
    return text.replace(old, new, count)
