"""The public e-service in a real browser, without JavaScript help: the form, its error
summary (focus moves to the summary's links), the receipt page and the triage view, each
checked with axe-core (WCAG 2.1 A/AA)."""

from __future__ import annotations

from typing import Any

import pytest
from e2e_kit import PASSWORD, AxeReport, missing_tools

_REASON = missing_tools()
if _REASON:
    pytest.skip(_REASON, allow_module_level=True)

from playwright.sync_api import Page  # noqa: E402
from sqlalchemy import select  # noqa: E402

from engine.models.intake import IntakeReport  # noqa: E402

pytestmark = pytest.mark.e2e


def _post(page: Page, button: Any) -> int:
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.request.is_navigation_request()
    ) as info:
        button.click()
    page.wait_for_load_state()
    return int(info.value.status)


def test_public_report_form_is_accessible_and_works(browser: Any, live_server: Any) -> None:
    axe = AxeReport()
    for javascript in (False, True):
        context = browser.new_context(locale="sv-SE", java_script_enabled=javascript)
        page = context.new_page()
        try:
            page.goto(f"{live_server.url}/login")
            page.locator('main a[href="/anmalan"]').click()
            page.wait_for_load_state()
            assert page.url.endswith("/anmalan")
            if javascript:
                axe.check(page, "report form")
            submit = page.locator('main form button[type="submit"]')
            # nothing filled in: 422 with the error summary linked to the fields
            assert _post(page, submit) == 422
            summary = page.locator("[data-error-summary]")
            assert summary.is_visible()
            assert summary.locator('a[href="#kind"]').count() == 1
            assert summary.locator('a[href="#concern"]').count() == 1
            if javascript:
                axe.check(page, "report form with errors")
            page.locator('label[for="kind-0"]').click()
            page.locator("#concern").fill("Ett barn tigger vid stationen under skoltid.")
            page.locator("#subject_name").fill("Ana")
            page.locator("#place").fill("Flemingsbergs station")
            page.locator("#anonymous").check()
            assert _post(page, page.locator('main form button[type="submit"]')) == 303
            assert page.url.endswith("/anmalan/kvitto")
            receipt = page.locator(".receipt-number").inner_text()
            assert len(receipt) == 19 and page.locator("#what-happens-now").is_visible()
            if javascript:
                axe.check(page, "receipt")
            page.reload()
            assert page.locator(".receipt-number").count() == 0
        finally:
            context.close()
    db = live_server.db()
    try:
        rows = db.execute(select(IntakeReport)).scalars().all()
        assert len(rows) == 2 and all(r.content["anonymous"] for r in rows)
    finally:
        db.close()
    assert not axe.pages, "accessibility violations:\n" + axe.summary()


def test_triage_pages_are_accessible(browser: Any, live_server: Any) -> None:
    axe = AxeReport()
    context = browser.new_context(locale="sv-SE")
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/anmalan")
        page.locator('label[for="kind-0"]').click()
        page.locator("#concern").fill("Ett barn sover i en trappuppgång.")
        _post(page, page.locator('main form button[type="submit"]'))
        page.goto(f"{live_server.url}/login")
        page.locator('input[name="username"]').fill("mottagning.barn")
        page.locator('input[name="password"]').fill(PASSWORD)
        _post(page, page.locator("main form").locator('button[type="submit"]'))
        page.goto(f"{live_server.url}/intake/")
        axe.check(page, "triage queue")
        page.locator("main table a").first.click()
        page.wait_for_load_state()
        axe.check(page, "report")
        page.locator('main a[href*="procedure=child_safeguarding"]').click()
        page.wait_for_load_state()
        axe.check(page, "start from report")
    finally:
        context.close()
    assert not axe.pages, "accessibility violations:\n" + axe.summary()
