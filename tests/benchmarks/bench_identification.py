"""Benchmark of the identification procedure on SQLite; prints figures, asserts nothing.

Run with ``make bench``. Three layers are measured so a regression can be placed:
1. the engine floor: restore one instance, complete a task, run engine steps, dump (no
   web, no database);
2. the JSON API: POST /api/v1/tasks/{id}/complete through the Flask test client;
3. the HTML form: POST /tasks/{id} with CSRF through the Flask test client;
plus the stored state size per instance (plain and as stored, encrypted).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from engine import actions  # noqa: E402
from engine.db import unit_of_work  # noqa: E402
from engine.models import OpenTask, ProcessInstance  # noqa: E402
from engine.processes import latest_published, model_for  # noqa: E402
from forms.mapping import task_data_to_form_data  # noqa: E402
from forms.spec import load_form_spec  # noqa: E402
from tests.conftest import actor, csrf_token_from, login, make_app, unit_id  # noqa: E402
from webapp.tokens import issue_token  # noqa: E402

SCENARIO = sorted((ROOT / "bpmn" / "identification" / "scenarios").glob("*.json"))[0]
REPS_ENGINE = 1000
REPS_HTTP = 300


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def report(name: str, samples_s: list[float]) -> None:
    ms = [s * 1000 for s in samples_s]
    median, p95 = statistics.median(ms), percentile(ms, 95)
    print(f"{name:<44} median {median:7.2f} ms   p95 {p95:7.2f} ms   (n={len(ms)})")


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def engine_floor(scenario: dict[str, Any], spec_json: str, sha: str) -> None:
    runtime = actions.runtime
    wf = runtime.start(sha, spec_json, scenario["intake"])
    state = runtime.dump(wf)
    first = scenario["steps"][0]
    samples = []
    for _ in range(REPS_ENGINE):
        start = time.perf_counter()
        w = runtime.restore(sha, spec_json, state)
        task = next(t for t in runtime.ready_user_tasks(w) if t.bpmn_id == first["complete"])
        runtime.complete_user_task(w, task.task_id, first["data"])
        runtime.dump(w)
        samples.append(time.perf_counter() - start)
    report("engine floor (restore+complete+steps+dump)", samples)
    print(f"{'stored state after intake':<44} {len(state):7d} bytes")


def main() -> None:
    scenario = json.loads(SCENARIO.read_text(encoding="utf-8"))
    tmp = Path(tempfile.mkdtemp(prefix="lotsen-bench-"))
    app = make_app(f"sqlite:///{tmp / 'bench.db'}", tmp)
    factory = app.extensions["lotsen_db"]
    settings = app.extensions["lotsen"]
    with unit_of_work(factory) as db:
        version = latest_published(db, "identification")
        spec_json, sha = version.spec_json, version.sha256
        model = model_for(version)
        intake_spec = load_form_spec(version.forms[model.start_form_key or ""])
        first = scenario["steps"][0]
        first_spec = load_form_spec(version.forms[model.tasks[first["complete"]].form_key or ""])
    print(f"Lotsen benchmark: identification on SQLite ({SCENARIO.name})")
    engine_floor(scenario, spec_json, sha)

    def new_cases(n: int) -> list[tuple[str, int]]:
        with unit_of_work(factory) as db:
            caseworker = actor(db, "handlaggare")
            unit = unit_id(db, "vuxenenheten")
            out = []
            for _ in range(n):
                case = actions.start_case(
                    db,
                    caseworker,
                    procedure="identification",
                    unit_id=unit,
                    intake=scenario["intake"],
                    subject_fields=intake_spec.subject_fields,
                )
                task = db.execute(
                    select(OpenTask).where(OpenTask.case_id == case.id, OpenTask.status == "open")
                ).scalar_one()
                instance = db.get(ProcessInstance, task.instance_id)
                assert instance is not None
                out.append((task.id, instance.version))
            return out

    client = app.test_client()
    token = issue_token(settings, "handlaggare", 3600)
    headers = {"Authorization": f"Bearer {token}"}
    samples = []
    for task_id, version_no in new_cases(REPS_HTTP):
        body = {"data": first["data"], "version": version_no}
        samples.append(
            timed(
                lambda t=task_id, b=body: _ok(
                    client.post(f"/api/v1/tasks/{t}/complete", json=b, headers=headers)
                )
            )
        )
    report("API POST /tasks/{id}/complete", samples)

    browser = login(app.test_client(), "handlaggare")
    samples = []
    for task_id, version_no in new_cases(REPS_HTTP):
        page = browser.get(f"/tasks/{task_id}")
        form = task_data_to_form_data(first_spec, first["data"])
        form["csrf_token"] = csrf_token_from(page.get_data(as_text=True))
        form["version"] = str(version_no)
        form["action"] = "complete"
        samples.append(timed(lambda t=task_id, f=form: _ok(browser.post(f"/tasks/{t}", data=f))))
    report("form POST /tasks/{id} (complete)", samples)

    with unit_of_work(factory) as db:
        sizes = [i.state_bytes for i in db.execute(select(ProcessInstance)).scalars()]
        raw = db.execute(select(ProcessInstance)).scalars().first()
    print(
        f"{'stored state per instance (plain JSON)':<44} "
        f"median {statistics.median(sizes):7.0f} bytes   max {max(sizes)} bytes"
    )
    if raw is not None:
        with app.extensions["lotsen_engine"].connect() as conn:
            from sqlalchemy import text

            enc = conn.execute(
                text("SELECT length(state) FROM process_instances WHERE id = :i"), {"i": raw.id}
            ).scalar_one()
        print(f"{'stored state as stored (AES-GCM, base64)':<44} {enc:7d} bytes")
    print(f"{'process definition stored once per version':<44} {len(spec_json):7d} bytes")


def _ok(response: Any) -> None:
    if response.status_code >= 400:
        raise SystemExit(
            f"benchmark request failed: {response.status_code} "
            f"{response.get_data(as_text=True)[:300]}"
        )


if __name__ == "__main__":
    main()
