"""Child process of ``run_scenarios``: a fresh SQLite database, the given versions, the runs.

Reads ``{"procedure", "versions", "scenarios"}`` as JSON on stdin and writes a JSON list of
``{"name", "passed", "message"}`` on stdout. Personal-data columns are encrypted with a key
made for this run only; the database lives in a temporary folder removed at the end.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from engine import crypto, timers
from engine.audit import SYSTEM
from engine.db import Base, make_engine, make_session_factory, unit_of_work
from engine.demo import load_demo_data
from engine.models.processes import ProcessVersion
from engine.workspace.scenario_runner import run_scenario_data

CPU_SECONDS = 240


def _load(factory: Any, versions: list[dict[str, Any]]) -> None:
    with unit_of_work(factory) as s:
        for v in versions:
            s.add(
                ProcessVersion(
                    process_id=v["process_id"],
                    number=v["number"],
                    name=v["name"],
                    status="published",
                    bpmn_xml=v["bpmn_xml"],
                    forms=v["forms"],
                    spec_json=v["spec_json"],
                    sha256=v["sha256"],
                    published_by_id=SYSTEM.user_id,
                )
            )
        load_demo_data(s)


def run(payload: dict[str, Any]) -> list[dict[str, Any]]:
    crypto.configure(os.urandom(32))
    timers.install_spiff_clock()
    results = []
    with tempfile.TemporaryDirectory(prefix="lotsen-scenarios-") as folder:
        for scenario in payload["scenarios"]:
            name = str(scenario.get("name"))
            if "error" in scenario:
                results.append({"name": name, "passed": False, "message": scenario["error"]})
                continue
            # A database per scenario: no scenario sees another's cases or timers.
            engine = make_engine(f"sqlite:///{Path(folder) / (name + '.db')}")
            try:
                Base.metadata.create_all(engine)
                factory = make_session_factory(engine)
                _load(factory, payload["versions"])
                run_scenario_data(factory, payload["procedure"], scenario["data"])
                results.append({"name": name, "passed": True, "message": "passed"})
            except AssertionError as exc:
                results.append({"name": name, "passed": False, "message": str(exc)[:2000]})
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}"[:2000]
                results.append({"name": name, "passed": False, "message": message})
            finally:
                engine.dispose()
    return results


def _limit_cpu(seconds: int) -> None:
    """A hard CPU limit on top of the parent's wall-clock timeout (defence in depth)."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds))
    except (ImportError, ValueError, OSError):  # pragma: no cover - not on this platform
        pass


def main() -> None:
    _limit_cpu(CPU_SECONDS)
    payload = json.loads(sys.stdin.buffer.read())
    json.dump(run(payload), sys.stdout)


if __name__ == "__main__":
    main()
