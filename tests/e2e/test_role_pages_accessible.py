"""Every role's own pages in a real browser, checked with axe-core (WCAG 2.1 A/AA).

The flows of the other browser tests reach the pages a case passes through; this walks the
menu of each role instead (intake queue, person search, emergency access, documents to approve,
alerts, notification settings, the housing contact's list, the partner's referral form,
account pages), in Swedish and once in English, so no page a role can open is left unchecked.
Each page must also answer 200 and show the role's own menu entries and no one else's.
"""

from __future__ import annotations

from typing import Any

import pytest
from e2e_kit import PASSWORD, AxeReport, missing_tools

_REASON = missing_tools()
if _REASON:
    pytest.skip(_REASON, allow_module_level=True)

from playwright.sync_api import Page  # noqa: E402

from tests.conftest import totp_code  # noqa: E402

pytestmark = pytest.mark.e2e

#: user -> (pages of their menu, menu links they must see, menu links they must not see)
ROLE_PAGES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "handlaggare": (
        ("/", "/cases", "/search", "/break-glass", "/break-glass/notices", "/account/sessions"),
        ("/cases/new", "/search", "/break-glass"),
        ("/intake/", "/housing/", "/workspace/", "/alerts", "/admin/users"),
    ),
    "mottagning": (("/intake/",), ("/intake/",), ("/cases/new", "/workspace/")),
    "enhetschef": (("/documents/pending",), ("/documents/pending",), ("/intake/",)),
    "granskare": (("/audit", "/audit/signals", "/alerts"), ("/audit", "/alerts"), ("/search",)),
    "admin": (("/admin/users", "/account/notifications"), ("/admin/users",), ("/audit",)),
    "huge": (("/", "/housing/"), ("/housing/",), ("/cases", "/search", "/break-glass")),
    "polis": (("/intake/referral",), ("/intake/referral",), ("/cases", "/search")),
}


def _submit(page: Page, button: Any) -> None:
    with page.expect_navigation():
        button.click()


def _login(page: Page, live_server: Any, username: str) -> None:
    page.goto(f"{live_server.url}/login")
    page.locator('input[name="username"]').fill(username)
    page.locator('input[name="password"]').fill(PASSWORD)
    _submit(page, page.locator("main form").locator('button[type="submit"]'))
    if "/login/totp" in page.url:
        code = totp_code(live_server.app, username, page.content())
        page.locator('input[name="code"]').fill(code)
        _submit(page, page.locator("main form").locator('button[type="submit"]'))
    assert "/login" not in page.url, f"login of {username} failed"


def _menu(page: Page) -> set[str]:
    links = page.locator("header nav a")
    return {str(links.nth(i).get_attribute("href")) for i in range(links.count())}


@pytest.mark.parametrize("username", sorted(ROLE_PAGES))
def test_each_roles_pages_are_accessible(browser: Any, live_server: Any, username: str) -> None:
    pages, shown, hidden = ROLE_PAGES[username]
    axe = AxeReport()
    context = browser.new_context(locale="sv-SE")
    page = context.new_page()
    try:
        _login(page, live_server, username)
        menu = _menu(page)
        assert set(shown) <= menu, f"{username} misses {set(shown) - menu} in {menu}"
        assert not set(hidden) & menu, f"{username} sees {set(hidden) & menu}"
        for path in pages:
            response = page.goto(f"{live_server.url}{path}")
            assert response is not None and response.status == 200, (path, response)
            axe.check(page, f"{username} {path}")
        # the same first page in English
        _submit(page, page.locator('form[action$="/language"] button[type="submit"]'))
        assert page.locator("html").get_attribute("lang") == "en"
        axe.check(page, f"{username} {pages[-1]} (English)")
    finally:
        context.close()
    assert not axe.pages, "accessibility violations:\n" + axe.summary()
