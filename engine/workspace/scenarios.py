"""Run a procedure's scenario files against any version, in a throwaway database.

A process owner checks a draft against the behaviour the procedure must keep before asking
for approval. The live database is never touched: the version (and the newest published
versions of the procedures it may start) is copied into a fresh SQLite database in a child
process, which also keeps the scenarios' clock travel away from the running application.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from engine.config import PROJECT_ROOT
from engine.models.processes import ProcessVersion
from engine.processes import published_procedures
from engine.workspace.versions import get_version

__all__ = ["ScenarioResult", "run_scenarios", "scenario_files", "version_payload"]

BPMN_DIR = PROJECT_ROOT / "bpmn"
#: Wall-clock budget for one run of every scenario of a procedure.
TIMEOUT_SECONDS = 180
MAX_SCENARIO_BYTES = 512 * 1024


@dataclass(frozen=True)
class ScenarioResult:
    """One scenario file's verdict."""

    name: str
    passed: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "message": self.message}


def scenario_files(process_id: str, bpmn_dir: Path = BPMN_DIR) -> list[Path]:
    """The procedure's scenario files (none for an unknown or oddly named procedure)."""
    if not process_id.replace("_", "").isalnum():
        return []
    folder = bpmn_dir / process_id / "scenarios"
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def version_payload(version: ProcessVersion, *, as_published: bool) -> dict[str, Any]:
    """What the worker needs to recreate a version in its own database."""
    return {
        "process_id": version.process_id,
        "number": version.number,
        "name": version.name,
        "bpmn_xml": version.bpmn_xml,
        "forms": version.forms or {},
        "spec_json": version.spec_json,
        "sha256": version.sha256,
        "status": "published" if as_published else version.status,
    }


def run_scenarios(
    db: Session, version_id: int, *, bpmn_dir: Path = BPMN_DIR
) -> list[ScenarioResult]:
    """Every scenario of the version's procedure, run against that version in isolation."""
    version = get_version(db, version_id)
    files = scenario_files(version.process_id, bpmn_dir)
    if not files:
        return []
    if not version.spec_json:
        return [
            ScenarioResult(p.stem, False, "the version has problems; fix them first") for p in files
        ]
    scenarios = []
    for path in files:
        if path.stat().st_size > MAX_SCENARIO_BYTES:
            scenarios.append({"name": path.stem, "error": "the scenario file is too large"})
            continue
        try:
            scenarios.append({"name": path.stem, "data": json.loads(path.read_text("utf-8"))})
        except (OSError, ValueError) as exc:
            scenarios.append({"name": path.stem, "error": f"cannot read: {exc}"})
    others = [
        version_payload(v, as_published=True)
        for v in published_procedures(db)
        if v.process_id != version.process_id
    ]
    payload = {
        "procedure": version.process_id,
        "versions": [version_payload(version, as_published=True), *others],
        "scenarios": scenarios,
    }
    return _run_worker(payload, [s["name"] for s in scenarios])


def _run_worker(payload: dict[str, Any], names: list[str]) -> list[ScenarioResult]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOTSEN_")}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "engine.workspace.scenario_worker"],
            input=json.dumps(payload).encode(),
            capture_output=True,
            timeout=TIMEOUT_SECONDS,
            cwd=str(PROJECT_ROOT),
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return [ScenarioResult(n, False, "timed out") for n in names]
    try:
        rows = json.loads(done.stdout.decode("utf-8"))
        return [ScenarioResult(str(r["name"]), bool(r["passed"]), str(r["message"])) for r in rows]
    except (ValueError, KeyError, TypeError):
        tail = done.stderr.decode("utf-8", errors="replace").strip().splitlines()[-1:]
        reason = f"the scenario runner failed ({tail[0][:200] if tail else done.returncode})"
        return [ScenarioResult(n, False, reason) for n in names]
