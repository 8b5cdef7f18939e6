"""Browser test fixtures: the real app on a free local port, and Debian's chromium.

The server runs in a background thread with werkzeug's ``make_server`` on a fresh SQLite
database prepared like every other test database (schema, bundled models, demo users).
Playwright drives /usr/bin/chromium; it never downloads a browser.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from e2e_kit import CHROMIUM, CHROMIUM_ARGS, artifact, missing_tools
from flask import Flask


@dataclass
class LiveServer:
    """The running app: its base URL and the Flask app (for database look-ups)."""

    url: str
    app: Flask

    def db(self) -> Any:
        """A new database session (close it after use)."""
        return self.app.extensions["lotsen_db"]()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The Lotsen app served on 127.0.0.1 and a free port, on its own SQLite database."""
    from werkzeug.serving import make_server

    from tests.conftest import make_app

    tmp = tmp_path_factory.mktemp("e2e")
    app = make_app(f"sqlite:///{tmp / 'lotsen-e2e.db'}", tmp)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="lotsen-e2e", daemon=True)
    thread.start()
    try:
        yield LiveServer(url=f"http://127.0.0.1:{server.server_port}", app=app)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        app.extensions["lotsen_engine"].dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, started once per test session."""
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class PageProblems:
    """What the browser noticed besides the page content: JS errors, CSP blocks, 4xx/5xx."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_responses: list[str] = field(default_factory=list)
    muted: bool = False  # while axe-core runs: its own CSSOM probe trips the page's CSP

    def on_console(self, url: str, kind: str, text: str) -> None:
        """Keep console errors, except those that only repeat a failed response."""
        if kind != "error" or self.muted or text.startswith("Failed to load resource"):
            return
        self.console_errors.append(f"{url}: {text}")

    def on_response(self, status: int, method: str, url: str) -> None:
        """Keep 4xx/5xx responses; the browser's own /favicon.ico probe is not the app's."""
        if status >= 400 and not url.endswith("/favicon.ico"):
            self.failed_responses.append(f"{status} {method} {url}")

    def all(self, *, allow_status: tuple[int, ...] = ()) -> list[str]:
        """Every problem once (with how many pages had it), except expected statuses."""
        failed = [r for r in self.failed_responses if int(r.split(" ", 1)[0]) not in allow_status]
        seen: dict[str, tuple[str, int]] = {}
        for problem in [*self.page_errors, *self.console_errors, *failed]:
            url, sep, text = problem.partition(": ")
            key = text if sep and url.startswith("http") else problem
            first, count = seen.get(key, (problem, 0))
            seen[key] = (first, count + 1)
        return [f"{first}  (x{count})" if count > 1 else first for first, count in seen.values()]


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context and page (Swedish locale, real CSP), screenshot on failure."""
    context = browser.new_context(
        locale="sv-SE", timezone_id="Europe/Stockholm", viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(15_000)
    pg = context.new_page()
    problems = PageProblems()
    pg.on("console", lambda m: problems.on_console(pg.url, m.type, m.text))
    pg.on("pageerror", lambda e: problems.page_errors.append(f"{pg.url}: {e}"))
    pg.on("response", lambda r: problems.on_response(r.status, r.request.method, r.url))
    pg.problems = problems
    try:
        yield pg
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            shot = artifact(f"failed-{request.node.name}.png")
            # The page may be gone; the failure itself is what matters.
            with contextlib.suppress(Exception):
                pg.screenshot(path=str(shot), full_page=True)
        context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    """Remember each phase's report on the item so fixtures can see whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
