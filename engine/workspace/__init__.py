"""Process-owner workspace (issue 5): check, version, publish, diff, migrate, import.

The engine half of the workspace. Both the JSON API and the browser pages call exactly these
functions; business rules (four eyes, who may edit, what may migrate) live here, not in routes.
"""

from engine.workspace.checker import (
    CheckResult,
    Problem,
    check,
    set_form_validator,
)
from engine.workspace.diff import VersionDiff, diff
from engine.workspace.importer import import_file
from engine.workspace.migration import InstancePlan, MigrationReport, migrate, migration_plan
from engine.workspace.scenarios import ScenarioResult, run_scenarios
from engine.workspace.versions import (
    approve,
    can_edit_processes,
    get_version,
    list_versions,
    reject,
    save_draft,
    submit,
)

__all__ = [
    "CheckResult",
    "InstancePlan",
    "MigrationReport",
    "Problem",
    "ScenarioResult",
    "VersionDiff",
    "approve",
    "can_edit_processes",
    "check",
    "diff",
    "get_version",
    "import_file",
    "list_versions",
    "migrate",
    "migration_plan",
    "reject",
    "run_scenarios",
    "save_draft",
    "set_form_validator",
    "submit",
]
