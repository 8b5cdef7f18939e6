"""Data catalogues that decisions cite: legal references and decision types (bpmn/*.toml).

Legal references are versioned data (domain.md §2.1): a decision cites the reference valid
on its decision date, the new Social Services Act (SFS 2025:400) from 1 July 2025 where its
section is verified, the old act otherwise.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

from engine.config import PROJECT_ROOT

NEW_SOL_IN_FORCE = date(2025, 7, 1)


@dataclass(frozen=True)
class LegalRef:
    """One row of the legal-reference catalogue."""

    key: str
    label_sv: str
    label_en: str
    old_ref: str
    new_ref: str | None
    new_valid_from: date
    status: str

    def label(self, lang: str) -> str:
        """The concept's name in ``lang``."""
        return self.label_en if lang == "en" else self.label_sv

    def citation_on(self, day: date) -> str:
        """The reference that applies on ``day``."""
        if self.new_ref and day >= self.new_valid_from:
            return self.new_ref
        return self.old_ref


@dataclass(frozen=True)
class DecisionType:
    """A decision type (D-A6 ...): its name and whether it can be appealed."""

    code: str
    label_sv: str
    label_en: str
    appealable: bool
    appeal_info_sv: str
    appeal_info_en: str

    def label(self, lang: str) -> str:
        """The type's name in ``lang``."""
        return self.label_en if lang == "en" else self.label_sv

    def appeal_info(self, lang: str) -> str:
        """How to appeal, in ``lang`` (empty when not appealable)."""
        return self.appeal_info_en if lang == "en" else self.appeal_info_sv


def _as_date(value: object, default: date) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        return date.fromisoformat(value)
    return default


@cache
def legal_refs(bpmn_dir: Path = PROJECT_ROOT / "bpmn") -> dict[str, LegalRef]:
    """The legal-reference catalogue by concept key."""
    path = bpmn_dir / "legal_refs.toml"
    if not path.exists():
        return {}
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    return {
        key: LegalRef(
            key=key,
            label_sv=str(row.get("label_sv", key)),
            label_en=str(row.get("label_en", key)),
            old_ref=str(row.get("old_ref", "")),
            new_ref=str(row["new_ref"]) if row.get("new_ref") else None,
            new_valid_from=_as_date(row.get("new_valid_from"), NEW_SOL_IN_FORCE),
            status=str(row.get("status", "")),
        )
        for key, row in raw.items()
        if isinstance(row, dict)
    }


@cache
def decision_types(bpmn_dir: Path = PROJECT_ROOT / "bpmn") -> dict[str, DecisionType]:
    """Decision types by code: ``bpmn/decision_types.toml`` and each procedure's own file."""
    paths = [bpmn_dir / "decision_types.toml", *sorted(bpmn_dir.glob("*/decision_types.toml"))]
    types: dict[str, DecisionType] = {}
    for path in paths:
        if not path.exists():
            continue
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        for code, row in raw.items():
            if isinstance(row, dict):
                types[code] = DecisionType(
                    code=code,
                    label_sv=str(row.get("label_sv", code)),
                    label_en=str(row.get("label_en", code)),
                    appealable=bool(row.get("appealable", False)),
                    appeal_info_sv=str(row.get("appeal_info_sv", "")),
                    appeal_info_en=str(row.get("appeal_info_en", "")),
                )
    return types


@dataclass(frozen=True)
class ProcedureSettings:
    """Where a procedure's cases live and how secret they are (``bpmn/procedures.toml``)."""

    process_id: str
    unit_key: str | None
    secrecy_class: str


@cache
def procedure_settings(bpmn_dir: Path = PROJECT_ROOT / "bpmn") -> dict[str, ProcedureSettings]:
    """Settings per procedure id (missing procedures get the defaults)."""
    path = bpmn_dir / "procedures.toml"
    if not path.exists():
        return {}
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    return {
        pid: ProcedureSettings(
            process_id=pid,
            unit_key=str(row["unit"]) if row.get("unit") else None,
            secrecy_class=str(row.get("secrecy_class", "SOCIAL_26_1")),
        )
        for pid, row in raw.items()
        if isinstance(row, dict)
    }
