"""End to end in a real browser: one identification case from intake to closure.

Scenario 06 (suspicion not substantiated, case closed) is the shortest path through every
kind of page: login, inbox, new case, eight task forms worked by a caseworker and the
coordinator, three decisions approved by the supervisor, the case page and the decision PDF.
On every distinct page axe-core checks WCAG 2.1 A/AA; one form is sent with a required field
empty to check the error summary page too.
"""

from __future__ import annotations

import io
import os
import re
import time
from typing import Any

import pytest
from e2e_kit import (
    PASSWORD,
    USER_FOR_ROLE,
    AxeReport,
    artifact,
    fill_form,
    load_scenario,
    missing_tools,
    read_form,
)

_REASON = missing_tools()
if _REASON:
    pytest.skip(_REASON, allow_module_level=True)

from playwright.sync_api import Locator, Page  # noqa: E402
from sqlalchemy import select  # noqa: E402

from engine.models import Case, Decision, Document, OpenTask, ProcessInstance  # noqa: E402
from tests.conftest import totp_code  # noqa: E402

pytestmark = pytest.mark.e2e

# Another scenario file of bpmn/identification/scenarios/ can be run the same way, e.g.
# LOTSEN_E2E_SCENARIO=08_dv_sexual_trafficking.json (the DV team's path).
SCENARIO = os.environ.get("LOTSEN_E2E_SCENARIO", "06_not_substantiated_closed.json")
ERROR_STEP = "task_request_consultation"  # sent once with a required field left empty
DRAFT_STEP = "task_hold_conversation"  # saved as a draft once before it is completed
PDF_AFTER = "D-A6"


class Journey:
    """One person at the keyboard, changing users as the case moves between roles."""

    def __init__(self, page: Page, server: Any) -> None:
        self.page = page
        self.server = server
        self.axe = AxeReport()
        self.user: str | None = None
        self.visits: dict[str, int] = {}

    # navigation ------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.server.url}{path}"

    def goto(self, path: str, label: str, status: int = 200) -> None:
        response = self.page.goto(self.url(path))
        assert response is not None and response.status == status, (
            f"GET {path}: {response.status if response else 'no response'}, expected {status}"
        )
        self.check(label)

    def check(self, label: str) -> None:
        """axe once per distinct page (label)."""
        if not any(c.startswith(f"{label} [") for c in self.axe.checked):
            self.axe.check(self.page, label)

    def submit(self, button: Locator, *, status: int = 303) -> None:
        """Click a submit button and check the POST's own status (303 redirect, or 422)."""
        with self.page.expect_response(
            lambda r: r.request.method == "POST" and r.request.is_navigation_request()
        ) as info:
            button.click()
        response = info.value
        self.page.wait_for_load_state()
        assert response.status == status, (
            f"POST {response.url}: {response.status}, expected {status}; page says:\n"
            f"{self.main_text()[:1500]}"
        )

    def main_text(self) -> str:
        main = self.page.locator("main")
        return main.inner_text() if main.count() else self.page.content()

    # users -----------------------------------------------------------------------------

    def login(self, username: str) -> None:
        self.goto("/login", "login")
        self.page.locator('input[name="username"]').fill(username)
        self.page.locator('input[name="password"]').fill(PASSWORD)
        self.submit(self.page.locator("main form").locator('button[type="submit"]'))
        if "/login/totp" in self.page.url:  # roles with a second factor: the code step
            self.check("login: two-step verification")
            code = totp_code(self.server.app, username, self.page.content())
            self.page.locator('input[name="code"]').fill(code)
            self.submit(self.page.locator("main form").locator('button[type="submit"]'))
        assert "/login" not in self.page.url, f"login of {username} failed"
        self.user = username

    def logout(self) -> None:
        self.submit(self.page.locator('form[action$="/logout"] button[type="submit"]'))
        assert "/login" in self.page.url
        self.user = None

    def become(self, username: str) -> None:
        if self.user == username:
            return
        if self.user is not None:
            self.logout()
        self.login(username)

    def inbox(self) -> None:
        self.goto("/", f"inbox ({self.user})")

    def open_from_inbox(self, href_end: str) -> None:
        """Go to the inbox and follow the link to a task."""
        self.inbox()
        link = self.page.locator(f'main a[href$="{href_end}"]')
        assert link.count() >= 1, f"{self.user}'s inbox has no link to {href_end}"
        with self.page.expect_navigation():
            link.first.click()

    # database look-ups (the browser does the work; the database tells us what to expect) --

    def one(self, query: Any) -> Any:
        session = self.server.db()
        try:
            return session.execute(query).scalars().first()
        finally:
            session.close()

    def wait_for(self, query: Any, what: str) -> Any:
        deadline = time.monotonic() + 5
        while (row := self.one(query)) is None:
            assert time.monotonic() < deadline, f"not found: {what}"
            time.sleep(0.1)
        return row


def task_form(page: Page) -> Locator:
    form = page.locator("main form").filter(
        has=page.locator('button[name="action"][value="complete"]')
    )
    assert form.count() == 1, "no task form with a complete button on " + page.url
    return form


def submit_button(form: Locator) -> Locator:
    complete = form.locator('button[name="action"][value="complete"]')
    return complete if complete.count() else form.locator('button[type="submit"]').last


# --- tests ---------------------------------------------------------------------------------


def test_login_pages_are_accessible(page: Page, live_server: Any) -> None:
    """The login page, and the same page after a wrong password (401 with the error summary)."""
    journey = Journey(page, live_server)
    journey.goto("/login", "login")
    page.locator('input[name="username"]').fill("handlaggare")
    page.locator('input[name="password"]').fill("wrong password")
    journey.submit(page.locator("main form").locator('button[type="submit"]'), status=401)
    assert page.locator("[data-error-summary]").is_visible()
    assert page.locator('input[name="username"]').input_value() == "handlaggare"
    assert page.locator('input[name="password"]').input_value() == ""
    journey.check("login failed")
    assert not journey.axe.pages, "accessibility violations:\n" + journey.axe.summary()
    problems = page.problems.all(allow_status=(401,))  # type: ignore[attr-defined]
    assert not problems, "browser problems:\n" + "\n".join(problems)


def test_axe_check_finds_a_known_violation(page: Page) -> None:
    """The checker itself works: no alt text, no label and pale text are all reported."""
    page.set_content(
        '<!doctype html><html lang="sv"><head><title>Canary</title></head><body><main>'
        '<h1>Canary</h1><img src="data:,"><input type="text" name="x">'
        '<p style="color:#bbb;background:#fff">Blek text</p></main></body></html>'
    )
    ids = {v["id"] for v in AxeReport().check(page, "canary")}
    assert {"image-alt", "label", "color-contrast"} <= ids, ids


def test_identification_scenario_in_the_browser(page: Page, live_server: Any) -> None:
    """A scenario (06 by default) from intake to closure through the real pages, axe-clean."""
    scenario = load_scenario(SCENARIO)
    journey = Journey(page, live_server)

    case = register_case(journey, scenario["intake"])
    for step in scenario["steps"]:
        if "complete" in step:
            work_task(journey, case.id, step["complete"], step["data"])
        elif "return" in step:
            decide(journey, case.id, step["return"], comment=step.get("comment") or "Återvisas.")
        else:
            decide(journey, case.id, step["approve"])
            if step["approve"] == PDF_AFTER:
                check_case_page_and_pdf(journey, case, PDF_AFTER)

    journey.goto(f"/cases/{case.id}", "case page (closed)")
    page.screenshot(path=str(artifact("case-page-closed.png")), full_page=True)
    check_outcome(journey, case.id, scenario["expect"])

    print(f"\naxe-core checked {len(journey.axe.checked)} pages:", *journey.axe.checked, sep="\n  ")
    assert not journey.axe.pages, (
        f"accessibility violations on {len(journey.axe.pages)} of "
        f"{len(journey.axe.checked)} pages:\n{journey.axe.summary()}"
    )
    problems = page.problems.all(allow_status=(422,))  # type: ignore[attr-defined]
    assert not problems, "browser problems:\n" + "\n".join(problems)


# --- steps ---------------------------------------------------------------------------------


def register_case(journey: Journey, intake: dict[str, Any]) -> Case:
    """Log in as the caseworker, open "New case" from the menu, fill the intake, submit."""
    page = journey.page
    journey.become(USER_FOR_ROLE["caseworker"])
    journey.inbox()
    new_case = page.locator('nav a[href$="/cases/new"]')
    assert new_case.count() == 1, "no 'New case' link in the menu"
    with page.expect_navigation():
        new_case.click()
    choose_procedure(journey)
    journey.check("new case")
    form = page.locator("main form").filter(has=page.locator('[name="contact_datetime"]'))
    assert form.count() == 1, "no identification intake form on " + page.url
    unit = form.locator('select[name="unit_id"]')
    if unit.count() and not unit.input_value():
        unit.select_option(index=1)
    # Sent empty first: every required intake field is listed in the error summary.
    journey.submit(submit_button(form), status=422)
    expect_error_summary(journey)
    journey.check("new case with errors (422)")
    form = page.locator("main form").filter(has=page.locator('[name="contact_datetime"]'))
    fill_form(form, intake)
    journey.submit(submit_button(form))
    case: Case = journey.wait_for(select(Case).order_by(Case.id.desc()), "the new case")
    assert case.procedure == "identification"
    return case


def choose_procedure(journey: Journey) -> None:
    """If "New case" first asks which procedure, pick identification."""
    page = journey.page
    if page.locator('[name="contact_datetime"]').count():
        return
    journey.check("new case: choose procedure")
    chooser = page.locator('main [name="procedure"]')
    if chooser.count():
        if chooser.first.evaluate("e => e.tagName") == "SELECT":
            chooser.first.select_option("identification")
        else:
            page.locator('main input[name="procedure"][value="identification"]').check()
        form = page.locator("main form").filter(has=chooser.first)
        with page.expect_navigation():
            form.locator('button[type="submit"]').last.click()
    else:
        link = page.locator('main a[href*="identification"]')
        assert link.count(), "new case page: no identification intake form and no way to choose it"
        with page.expect_navigation():
            link.first.click()
    assert page.locator('[name="contact_datetime"]').count(), "identification intake not shown"


def work_task(journey: Journey, case_id: int, bpmn_id: str, data: dict[str, Any]) -> None:
    """Open the task from the right user's inbox, fill it from the scenario, complete it."""
    page = journey.page
    task = journey.wait_for(
        select(OpenTask).where(
            OpenTask.case_id == case_id, OpenTask.bpmn_id == bpmn_id, OpenTask.status == "open"
        ),
        f"open task {bpmn_id}",
    )
    journey.become(USER_FOR_ROLE[task.role])
    journey.open_from_inbox(f"/tasks/{task.id}")
    assert page.url.endswith(f"/tasks/{task.id}"), page.url
    visit = journey.visits[bpmn_id] = journey.visits.get(bpmn_id, 0) + 1
    journey.check(f"task form {bpmn_id}" + (f" (visit {visit})" if visit > 1 else ""))
    form = task_form(page)

    if bpmn_id == DRAFT_STEP:
        check_draft(journey, task.id, data)
        form = task_form(page)
    if bpmn_id == ERROR_STEP:
        check_error_summary(journey, form, data)
        form = task_form(page)

    fill_form(form, data)
    journey.submit(submit_button(form))
    done = journey.one(select(OpenTask).where(OpenTask.id == task.id))
    assert done.status == "done", f"{bpmn_id} is still {done.status} after completing it"


def check_draft(journey: Journey, task_id: str, data: dict[str, Any]) -> None:
    """Save a draft, open the task again: what was typed is back."""
    page = journey.page
    form = task_form(page)
    fill_form(form, data)
    typed = read_form(form, list(data))
    draft = form.locator('button[name="action"][value="draft"]')
    assert draft.count() == 1, "no 'Save draft' button"
    journey.submit(draft)
    journey.goto(f"/tasks/{task_id}", "task form with draft")
    assert read_form(task_form(page), list(data)) == typed, "the draft did not keep the values"


def check_error_summary(journey: Journey, form: Locator, data: dict[str, Any]) -> None:
    """Send the form with one required text field empty: 422, error summary, values kept."""
    page = journey.page
    empty_key = next(k for k, v in data.items() if isinstance(v, str) and v)
    partial = {**data, empty_key: ""}
    fill_form(form, partial)
    form.locator('[name="journal_note"]').fill("E2E: anteckning som ska finnas kvar")
    kept = [k for k in data if k != empty_key] + ["journal_note"]
    typed = read_form(form, kept)
    journey.submit(submit_button(form), status=422)
    summary = expect_error_summary(journey)
    field_id = task_form(page).locator(f'[name="{empty_key}"]').first.get_attribute("id")
    assert summary.locator(f'a[href="#{field_id}"]').count() == 1, (
        f"the error summary does not link to the empty field #{field_id}"
    )
    assert read_form(task_form(page), kept) == typed, "typed values were lost on the error page"
    journey.check("task form with errors (422)")
    task_form(page).locator('[name="journal_note"]').fill("")


def expect_error_summary(journey: Journey) -> Locator:
    """A visible error summary that has the focus, so screen readers start there."""
    page = journey.page
    summary = page.locator("[data-error-summary]")
    assert summary.is_visible(), "no error summary on the 422 page"
    assert summary.locator("li").count() >= 1, "the error summary lists no errors"
    focused = page.evaluate("() => document.activeElement?.hasAttribute('data-error-summary')")
    assert focused, "the error summary does not get the focus on the 422 page"
    return summary


def decide(
    journey: Journey, case_id: int, decision_type: str, *, comment: str | None = None
) -> None:
    """As the supervisor: open the approval from the inbox, press Approve (or, with a
    comment, Return)."""
    page = journey.page
    decision = journey.wait_for(
        select(Decision).where(
            Decision.case_id == case_id,
            Decision.decision_type == decision_type,
            Decision.status == "proposed",
        ),
        f"proposed decision {decision_type}",
    )
    task = journey.wait_for(
        select(OpenTask).where(OpenTask.decision_id == decision.id, OpenTask.status == "open"),
        f"approval task of {decision_type}",
    )
    journey.become(USER_FOR_ROLE[task.role])
    journey.open_from_inbox(f"/tasks/{task.id}")
    if not page.url.endswith(f"/decisions/{decision.id}"):
        link = page.locator(f'main a[href$="/decisions/{decision.id}"]')
        if link.count():
            with page.expect_navigation():
                link.first.click()
        else:
            journey.goto(f"/decisions/{decision.id}", "decision page (direct)")
    journey.check(f"decision page {decision_type}")
    if comment is None:
        label, verdict = r"^\s*(approve|godkänn)", "approved"
    else:
        label, verdict = r"^\s*(return|återvisa)", "returned"
        page.locator('main form textarea[name="comment"]').fill(comment)
    button = page.get_by_role("button", name=re.compile(label, re.I))
    assert button.count() == 1, f"no single {verdict!r} button on the decision page"
    journey.submit(button)
    decided = journey.one(select(Decision).where(Decision.id == decision.id))
    assert decided.status == verdict, f"{decision_type} is {decided.status}, expected {verdict}"


def check_case_page_and_pdf(journey: Journey, case: Case, decision_type: str) -> None:
    """The case page lists the approved decision's PDF; it downloads as a real PDF."""
    page = journey.page
    journey.goto(f"/cases/{case.id}", "case page")
    assert case.number in journey.main_text(), "the case page does not show the case number"
    page.screenshot(path=str(artifact("case-page.png")), full_page=True)
    document = journey.wait_for(
        select(Document)
        .join(Decision, Document.decision_id == Decision.id)
        .where(Document.case_id == case.id, Decision.decision_type == decision_type),
        f"the PDF of {decision_type}",
    )
    link = page.locator(f'main a[href$="/documents/{document.id}"]')
    assert link.count() >= 1, f"the case page has no link to /documents/{document.id}"
    with page.expect_download() as info:
        link.first.click()
    download = info.value
    target = artifact(f"decision-{decision_type}.pdf")
    download.save_as(str(target))
    body = target.read_bytes()
    assert body.startswith(b"%PDF"), f"the download is not a PDF: {body[:40]!r}"
    assert download.suggested_filename.endswith(".pdf"), download.suggested_filename
    # The same URL again, for its headers: an attachment, never cached.
    href = link.first.get_attribute("href") or ""
    response = page.request.get(journey.url(href) if href.startswith("/") else href)
    assert response.status == 200, f"GET {href}: {response.status}"
    assert response.body() == body
    headers = response.headers
    assert headers.get("content-type", "").startswith("application/pdf"), headers
    assert headers.get("content-disposition", "").startswith("attachment"), headers
    assert "no-store" in headers.get("cache-control", ""), headers
    try:
        from pypdf import PdfReader
    except ImportError:
        return
    text = "".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(body)).pages)
    assert case.number in text, "the decision PDF does not name the case"


def check_outcome(journey: Journey, case_id: int, expect: dict[str, Any]) -> None:
    """The database agrees with the scenario: decisions, visited steps, procedure finished."""
    session = journey.server.db()
    try:
        decisions = (
            session.execute(
                select(Decision).where(Decision.case_id == case_id, Decision.status == "approved")
            )
            .scalars()
            .all()
        )
        assert {d.decision_type: d.outcome for d in decisions} == expect["decisions"]
        done = (
            session.execute(
                select(OpenTask.bpmn_id).where(
                    OpenTask.case_id == case_id, OpenTask.status == "done"
                )
            )
            .scalars()
            .all()
        )
        assert set(done) == set(expect["visited"])
        instance = (
            session.execute(select(ProcessInstance).where(ProcessInstance.case_id == case_id))
            .scalars()
            .one()
        )
        assert (instance.status == "completed") == expect["completed"]
    finally:
        session.close()
