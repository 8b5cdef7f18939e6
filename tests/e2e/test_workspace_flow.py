"""End to end in a real browser: a process owner changes the identification procedure.

The process owner opens the bpmn-js modeler on the published version, renames a task in the
side panel, also renames a lane to something that is not a role, saves, sees the checker's
error for that lane (with the element marked), follows the problem to the lane, picks the
right role, saves again without problems, edits a form spec (invalid JSON first: the text
stays and the error shows), and submits. A second process owner (processagare2) publishes the
version. axe-core checks every workspace page (helpers from test_identification_flow.py);
any console error (a CSP block included) fails the test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from e2e_kit import missing_tools

_REASON = missing_tools()
if _REASON:
    pytest.skip(_REASON, allow_module_level=True)

from playwright.sync_api import Page, expect  # noqa: E402
from sqlalchemy import select  # noqa: E402
from test_identification_flow import Journey  # noqa: E402

from engine import workspace  # noqa: E402
from engine.models import ProcessVersion, User  # noqa: E402
from webapp.security import actor_for  # noqa: E402

pytestmark = pytest.mark.e2e

TASK = "task_screen_acute"
NEW_NAME = "A2 Akut skyddsbedömning"
LANE = "lane_caseworker"
FORM = "identification_screening"


def _version(journey: Journey, **where: Any) -> ProcessVersion:
    query = select(ProcessVersion).order_by(ProcessVersion.id.desc())
    for key, value in where.items():
        query = query.where(getattr(ProcessVersion, key) == value)
    version: ProcessVersion = journey.one(query)
    return version


def _save(page: Page) -> None:
    with page.expect_response(lambda r: r.url.endswith("/workspace/save")) as info:
        page.locator("#save-draft").click()
    assert info.value.status == 200, info.value.text()[:500]
    expect(page.locator("#save-draft")).to_be_enabled()


def test_process_owner_changes_and_a_second_owner_publishes(page: Page, live_server: Any) -> None:
    journey = Journey(page, live_server)
    journey.login("processagare")
    published = _version(journey, process_id="identification", status="published")

    journey.goto("/workspace/", "workspace: procedures")
    journey.goto(f"/workspace/versions/{published.id}", "workspace: version (published)")
    journey.goto(f"/workspace/versions/{published.id}/diagram", "workspace: read-only diagram")
    expect(page.locator(f'.djs-element[data-element-id="{TASK}"]')).to_be_visible()
    journey.goto("/workspace/upload", "workspace: upload")

    # --- the modeler: rename a task, give a lane a name that is no role, save --------------
    page.goto(journey.url(f"/workspace/versions/{published.id}/edit"))
    expect(page.locator("#element-picker option")).not_to_have_count(1)
    journey.check("workspace: modeler")
    page.locator(f'.djs-element[data-element-id="{TASK}"]').click()
    expect(page.locator("#prop-id")).to_have_text(TASK)
    page.locator("#prop-name").fill(NEW_NAME)
    page.locator("#prop-name").press("Tab")
    expect(page.locator("#prop-formKey")).to_have_value(FORM)
    page.locator("#prop-deadline").fill("P1D")  # a Lotsen property, kept as an extension
    page.locator("#prop-deadline").press("Tab")
    page.locator("#element-picker").select_option(LANE)
    expect(page.locator("#prop-id")).to_have_text(LANE)
    expect(page.locator("#prop-lane")).to_have_value("caseworker")
    page.locator("#prop-name").fill("handläggare")
    page.locator("#prop-name").press("Tab")
    _save(page)

    problem = page.locator(f'#problem-list button[data-element-id="{LANE}"]')
    expect(problem).to_be_visible()
    expect(page.locator(f'.djs-element.lotsen-problem[data-element-id="{LANE}"]')).to_have_count(1)
    draft = _version(journey, process_id="identification", status="draft")
    assert draft.check_ok is False and NEW_NAME in draft.bpmn_xml  # stored despite the problem
    assert any(p["element_id"] == LANE for p in draft.problems)
    assert '<spiffworkflow:property name="deadline" value="P1D"' in draft.bpmn_xml
    assert draft.bpmn_xml.count("spiffworkflow:messagePayload") == published.bpmn_xml.count(
        "spiffworkflow:messagePayload"
    )  # extension elements the side panel does not edit survive the round trip
    assert journey.page.url.endswith(f"/workspace/versions/{draft.id}/edit")
    journey.check("workspace: modeler with a problem")

    # --- follow the problem to the lane and pick the right role -----------------------------
    page.locator("#element-picker").select_option(TASK)  # somewhere else first
    problem.click()
    expect(page.locator("#prop-id")).to_have_text(LANE)
    page.locator("#prop-lane").select_option("caseworker")
    _save(page)
    expect(page.locator("#problem-count")).to_have_class("check-ok")
    expect(page.locator(".djs-element.lotsen-problem")).to_have_count(0)
    fixed = _version(journey, id=draft.id)
    assert fixed.check_ok is True and fixed.status == "draft" and NEW_NAME in fixed.bpmn_xml

    # --- a form spec: invalid JSON keeps the text, a valid change shows in the preview ------
    page.locator("#form-key").select_option(FORM)
    spec = page.locator("#form-spec")
    original = spec.input_value()
    spec.fill(original + "\n,,")
    expect(page.locator("#form-spec-error")).to_be_visible()
    assert spec.input_value().endswith(",,")
    changed = original.replace('"A2 Akut bedömning"', '"A2 Akut bedömning nu"', 1)
    assert changed != original
    spec.fill(changed)
    expect(page.locator("#form-spec-error")).to_be_hidden()
    expect(page.locator("#form-preview .ws-preview-legend")).to_have_text("A2 Akut bedömning nu")
    journey.check("workspace: modeler with form preview")
    _save(page)
    expect(page.locator("#problem-count")).to_have_class("check-ok")

    # --- submit, compare, and hand over ------------------------------------------------------
    journey.goto(f"/workspace/versions/{draft.id}", "workspace: version (draft)")
    journey.submit(page.locator(f'form[action$="/workspace/versions/{draft.id}/submit"] button'))
    assert _version(journey, id=draft.id).status == "submitted"
    journey.goto(
        f"/workspace/diff?a={published.id}&b={draft.id}", "workspace: differences between versions"
    )
    assert TASK in journey.main_text() and NEW_NAME in journey.main_text()
    journey.goto(f"/workspace/versions/{published.id}/migration", "workspace: migration dry run")

    # --- the second process owner publishes ---------------------------------------------------
    journey.become("processagare2")
    journey.goto(f"/workspace/versions/{draft.id}", "workspace: version (submitted)")
    journey.submit(page.locator(f'form[action$="/workspace/versions/{draft.id}/approve"] button'))
    final = _version(journey, id=draft.id)
    approver = journey.one(select(User.id).where(User.username == "processagare2"))
    assert final.status == "published" and final.published_by_id == approver

    print(f"\naxe-core checked {len(journey.axe.checked)} pages:", *journey.axe.checked, sep="\n  ")
    assert not journey.axe.pages, (
        f"accessibility violations on {len(journey.axe.pages)} of "
        f"{len(journey.axe.checked)} pages:\n{journey.axe.summary()}"
    )
    problems = page.problems.all()  # type: ignore[attr-defined]
    assert not problems, "browser problems:\n" + "\n".join(problems)


CORPUS = Path(__file__).resolve().parents[3] / "shared" / "bpmn-corpus"


def test_files_from_other_tools_render_in_the_viewer(page: Page, live_server: Any) -> None:
    """Every corpus file the workspace stores as a draft is drawn by the read-only viewer."""
    files = sorted(p for p in CORPUS.rglob("*.bpmn") if p.is_file())
    if not files:
        pytest.skip(f"no corpus at {CORPUS}")
    drafts: dict[str, int] = {}
    session = live_server.db()
    try:
        owner = session.execute(select(User).where(User.username == "processagare")).scalar_one()
        actor = actor_for(owner)
        for path in files:
            version, _result = workspace.import_file(
                session, actor, filename=path.name, data=path.read_bytes()
            )
            if version is not None and b"BPMNShape" in path.read_bytes():
                drafts[path.name] = version.id
        session.commit()
    finally:
        session.close()
    assert len(drafts) > len(files) // 2

    journey = Journey(page, live_server)
    journey.login("processagare")
    blank, explained = [], []
    for name, version_id in drafts.items():
        page.goto(journey.url(f"/workspace/versions/{version_id}/diagram"))
        ready = page.locator(".ws-viewer--ready, [data-viewer-status]:not([hidden])")
        expect(ready.first).to_be_attached()
        if page.locator(".ws-viewer--ready .djs-element").count():
            continue
        # not drawn: then the page must say so (the steps list stays), never an empty box
        status = page.locator("[data-viewer-status]")
        (explained if status.is_visible() and status.inner_text() else blank).append(name)
    assert not blank, f"an empty diagram box without a word: {blank}"
    # a layout that names no drawable element (Visual Paradigm's plane names an empty process)
    assert len(explained) <= 2, f"not drawn by the viewer: {explained}"
    problems = page.problems.all()  # type: ignore[attr-defined]
    assert not problems, "browser problems:\n" + "\n".join(problems)
