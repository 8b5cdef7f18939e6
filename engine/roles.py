"""Role ids and what each role may do, read from ``bpmn/roles.toml`` (data, not code)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from engine.config import PROJECT_ROOT

CASEWORKER = "caseworker"
DV_TEAM = "dv_team"
SUPERVISOR = "supervisor"
UNIT_MANAGER = "unit_manager"
COMMITTEE = "committee"
COORDINATOR = "coordinator"
HOUSING_CONTACT = "housing_contact"
PROCESS_OWNER = "process_owner"
AUDITOR = "auditor"
ADMIN = "admin"

#: Roles that may start a case and that can open cases of their own unit as staff.
INTAKE_ROLES = frozenset({CASEWORKER})
#: Roles that oversee every case of their unit (they approve its decisions).
OVERSIGHT_ROLES = frozenset({SUPERVISOR, UNIT_MANAGER})
#: Roles of partners outside social services: they see their own task forms, never a case.
EXTERNAL_ROLES = frozenset({HOUSING_CONTACT})
#: Roles that approve decisions (the four-eyes control); the committee decides LVU matters.
APPROVER_ROLES = frozenset({SUPERVISOR, UNIT_MANAGER, COMMITTEE})


@dataclass(frozen=True)
class RoleInfo:
    """One role from roles.toml."""

    id: str
    sv: str
    en: str
    lane: bool
    unit_scoped: bool

    def label(self, lang: str) -> str:
        """The role's name in ``lang`` (Swedish unless English is asked for)."""
        return self.en if lang == "en" else self.sv


@cache
def load_roles(path: Path = PROJECT_ROOT / "bpmn" / "roles.toml") -> dict[str, RoleInfo]:
    """All roles by id."""
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    return {
        rid: RoleInfo(
            id=rid,
            sv=str(v["sv"]),
            en=str(v["en"]),
            lane=bool(v.get("lane", False)),
            unit_scoped=bool(v.get("unit_scoped", False)),
        )
        for rid, v in raw.items()
    }


def lane_role_ids() -> frozenset[str]:
    """Role ids a BPMN lane may name."""
    return frozenset(r.id for r in load_roles().values() if r.lane)
