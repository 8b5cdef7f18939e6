"""End to end in a real browser: identification through the linked victim-support case.

Identification scenario 01 (presumed trafficking for begging, police report, D-A8 "open a
needs investigation") starts a victim-support case for the same person; that case is then
worked to its closure with the steps of victim-support scenario 04 (no timers on its path),
and its closure note is produced on the outgoing-documents page. axe-core checks every
distinct page (helpers from test_identification_flow.py).
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from e2e_kit import load_scenario, missing_tools

_REASON = missing_tools()
if _REASON:
    pytest.skip(_REASON, allow_module_level=True)

from playwright.sync_api import Page  # noqa: E402
from sqlalchemy import select  # noqa: E402
from test_identification_flow import Journey, decide, register_case, work_task  # noqa: E402

from engine.models import Case, CaseLink, Decision, Document, ProcessInstance  # noqa: E402

pytestmark = pytest.mark.e2e

IDENTIFICATION = "01_presumed_trafficking_begging_reported.json"


def _walk(journey: Journey, case_id: int, steps: list[dict[str, Any]]) -> None:
    for step in steps:
        if "complete" in step:
            work_task(journey, case_id, step["complete"], step["data"])
        elif "return" in step:
            decide(journey, case_id, step["return"], comment=step.get("comment") or "Återvisas.")
        else:
            decide(journey, case_id, step["approve"])


def _victim_steps() -> list[dict[str, Any]]:
    path = Path(__file__).resolve().parents[2] / "bpmn" / "victim_support" / "scenarios"
    (found,) = sorted(path.glob("04_*.json"))
    steps: list[dict[str, Any]] = json.loads(found.read_text(encoding="utf-8"))["steps"]
    assert not any("advance" in s for s in steps), "the browser path must not need timers"
    return steps


def test_identification_through_linked_victim_support(page: Page, live_server: Any) -> None:
    journey = Journey(page, live_server)
    scenario = load_scenario(IDENTIFICATION)

    case = register_case(journey, scenario["intake"])
    _walk(journey, case.id, scenario["steps"])

    link = journey.wait_for(
        select(CaseLink).where(CaseLink.from_case_id == case.id), "the linked case"
    )
    linked: Case = journey.one(select(Case).where(Case.id == link.to_case_id))
    assert linked.procedure == "victim_support"

    # the identification case page names the linked case and lets its team open it
    journey.become("handlaggare")
    journey.goto(f"/cases/{case.id}", "identification case page (linked)")
    assert linked.number in journey.main_text()

    _walk(journey, linked.id, _victim_steps())

    journey.become("handlaggare")
    journey.goto(f"/cases/{linked.id}", "victim-support case page (closed)")
    assert case.number in journey.main_text(), "the linked case does not name its origin"
    journey.goto(f"/documents/cases/{linked.id}", "outgoing documents page")
    page.locator('main select[name="kind"]').select_option("closure_note")
    journey.submit(
        page.locator("main form")
        .filter(has=page.locator('select[name="kind"]'))
        .locator('button[type="submit"]')
    )
    journey.check("outgoing documents page (after filing)")
    document = journey.wait_for(
        select(Document).where(Document.case_id == linked.id, Document.kind == "closure_note"),
        "the closure note",
    )
    href = f"/documents/{document.id}/download"
    assert page.locator(f'main a[href$="{href}"]').count() == 1
    response = page.request.get(journey.url(href))
    assert response.status == 200 and response.body().startswith(b"%PDF")
    assert "no-store" in response.headers.get("cache-control", "")
    from pypdf import PdfReader

    text = "".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(response.body())).pages)
    assert linked.number in text

    session = live_server.db()
    try:
        approved = {
            d.decision_type
            for d in session.execute(
                select(Decision).where(Decision.case_id == linked.id, Decision.status == "approved")
            ).scalars()
        }
        instance = session.execute(
            select(ProcessInstance).where(ProcessInstance.case_id == linked.id)
        ).scalar_one()
    finally:
        session.close()
    assert {"D-D2", "D-D5", "D-D7", "D-D10", "D-D11"} <= approved
    assert instance.status == "completed"

    print(f"\naxe-core checked {len(journey.axe.checked)} pages:", *journey.axe.checked, sep="\n  ")
    assert not journey.axe.pages, (
        f"accessibility violations on {len(journey.axe.pages)} of "
        f"{len(journey.axe.checked)} pages:\n{journey.axe.summary()}"
    )
    problems = page.problems.all(allow_status=(422,))  # type: ignore[attr-defined]
    assert not problems, "browser problems:\n" + "\n".join(problems)


def test_housing_contact_pages_are_accessible(page: Page, live_server: Any) -> None:
    """The housing contact's notifications page and its step form, axe-clean, property only."""
    from tests.engine.engine_testkit import run_scenario

    path = Path(__file__).resolve().parents[2] / "bpmn" / "housing_notification" / "scenarios"
    (found,) = sorted(path.glob("03_*.json"))
    scenario = json.loads(found.read_text(encoding="utf-8"))
    cut = next(i for i, s in enumerate(scenario["steps"]) if "advance" in s)
    scenario["steps"] = scenario["steps"][:cut]
    partial = Path(tempfile.mkdtemp()) / "housing_notification" / "scenarios"
    partial.mkdir(parents=True, exist_ok=True)
    (partial / found.name).write_text(json.dumps(scenario), encoding="utf-8")
    run_scenario(live_server.app, partial / found.name)

    journey = Journey(page, live_server)
    journey.become("huge")
    journey.goto("/housing/", "housing contact: notifications")
    assert "Exempelvägen 12" in journey.main_text()
    link = page.locator('main a[href*="/tasks/"]')
    assert link.count() >= 1, "no link to the contact's open step"
    with page.expect_navigation():
        link.first.click()
    journey.check("housing contact: acknowledgement form")
    assert "Barn" not in journey.main_text()
    assert not journey.axe.pages, journey.axe.summary()
