"""Helpers for the browser tests: where the tools are, axe-core checks, filling Lotsen forms.

Kept out of conftest.py so the test module can import them by name (pytest puts this folder
on ``sys.path``, as for ``tests/forms/forms_testkit.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the module must import without playwright, to skip cleanly
    from playwright.sync_api import Locator, Page

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SCENARIOS = ROOT / "bpmn" / "identification" / "scenarios"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

# The demo user who works each BPMN lane (role) of a procedure.
USER_FOR_ROLE = {
    "caseworker": "handlaggare",
    "coordinator": "samordnare",
    "dv_team": "kvinnofrid",
    "supervisor": "arbetsledare",
}
PASSWORD = "demo"


def missing_tools() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (run scripts/ensure-chromium.sh)"
    if not AXE_JS.exists():
        return f"{AXE_JS.relative_to(ROOT)} is missing (run npm ci at the repo root)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed"
    return None


def artifact(name: str) -> Path:
    """A path in tests/e2e/artifacts/ (created on demand; git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


def load_scenario(name: str) -> dict[str, Any]:
    """One scenario file of the identification procedure."""
    scenario: dict[str, Any] = json.loads((SCENARIOS / name).read_text(encoding="utf-8"))
    return scenario


# --- accessibility ---------------------------------------------------------------------------

_AXE_RUN = """async (options) => {
  const result = await window.axe.run(document, options);
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map((n) => ({
      target: n.target.map(String), html: n.html.slice(0, 300),
      summary: (n.failureSummary || '').slice(0, 500),
    })),
  }));
}"""


@dataclass
class AxeReport:
    """Violations found per page, so one run lists every page's problems at once."""

    pages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    checked: list[str] = field(default_factory=list)

    def check(self, page: Page, label: str) -> list[dict[str, Any]]:
        """Run axe-core (WCAG 2.1 A and AA rules) on the current page and remember the result.

        The app's CSP (`script-src 'self'`) blocks an inline <script>, which is what
        `add_script_tag(path=...)` creates; `page.evaluate` runs through the DevTools protocol
        and is not subject to the page's CSP, so the page keeps its real policy under test.
        """
        if not page.evaluate("() => typeof window.axe === 'object'"):
            page.evaluate(_axe_source())
        problems = getattr(page, "problems", None)
        if problems is not None:
            problems.muted = True
        try:
            violations: list[dict[str, Any]] = page.evaluate(
                _AXE_RUN,
                {"runOnly": {"type": "tag", "values": AXE_TAGS}, "resultTypes": ["violations"]},
            )
        finally:
            if problems is not None:
                page.wait_for_timeout(50)  # let axe's console messages arrive while muted
                problems.muted = False
        key = f"{label} [{_path_of(page.url)}]"
        self.checked.append(key)
        if violations:
            self.pages[key] = violations
        return violations

    def summary(self) -> str:
        """A readable list: page, rule, impact, help, first targets."""
        lines = []
        for page, violations in self.pages.items():
            lines.append(f"== {page}")
            for v in violations:
                lines.append(f"  - {v['id']} ({v['impact']}): {v['help']}  <{v['helpUrl']}>")
                for node in v["nodes"][:3]:
                    lines.append(f"      at {' '.join(node['target'])}: {node['html'][:160]}")
                    if node["summary"]:
                        first = node["summary"].splitlines()
                        lines.append(f"        {' / '.join(s.strip() for s in first[:3])}")
                if len(v["nodes"]) > 3:
                    lines.append(f"      ... and {len(v['nodes']) - 3} more elements")
        return "\n".join(lines)


_AXE_CACHE: dict[str, str] = {}


def _axe_source() -> str:
    if "src" not in _AXE_CACHE:
        _AXE_CACHE["src"] = AXE_JS.read_text(encoding="utf-8")
    return _AXE_CACHE["src"]


def _path_of(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url) or "/"


# --- forms -----------------------------------------------------------------------------------


def _is_empty(value: Any) -> bool:
    return value is None or value is False or value == "" or value == []


def _browser_value(input_type: str, value: Any) -> str:
    """The text a browser input takes for a scenario value."""
    if input_type == "datetime-local":
        # "2026-03-02T10:15:00+01:00" -> "2026-03-02T10:15" (the input has no zone).
        return str(value)[:16]
    return str(value)


def _set_one(form: Locator, key: str, value: Any) -> None:
    """Put one scenario value into the field named ``key`` (the field must be visible)."""
    inputs = form.locator(f'[name="{key}"]')
    count = inputs.count()
    assert count > 0, f"no field named {key!r} on the form"
    first = inputs.first
    tag = first.evaluate("e => e.tagName.toLowerCase()")
    kind = (first.get_attribute("type") or "").lower()
    if tag == "select":
        first.select_option(value="" if value is None else str(value))
    elif kind == "radio":
        if value is None:
            return
        form.locator(f'input[name="{key}"][value="{value}"]').check()
    elif kind == "checkbox" and (count > 1 or isinstance(value, list)):
        wanted = {str(v) for v in (value or [])}
        for i in range(count):
            box = inputs.nth(i)
            box.set_checked((box.get_attribute("value") or "") in wanted)
    elif kind == "checkbox":
        first.set_checked(bool(value))
    else:
        first.fill("" if value is None else _browser_value(kind, value))


def _visible(form: Locator, key: str) -> bool:
    wrapper = form.locator(f'[data-key="{key}"]')
    if wrapper.count():
        return wrapper.first.is_visible()
    return form.locator(f'[name="{key}"]').first.is_visible()


def fill_form(form: Locator, data: Mapping[str, Any]) -> None:
    """Fill fields by name: text, date, select, radio, checkbox and checklist.

    Choices first (they show or hide other fields through forms.js), then the rest; a field
    still hidden at the end must have an empty value in the scenario, otherwise the
    browser-side condition disagrees with the scenario and that is reported.
    """
    pending = dict(data)
    while pending:
        progressed = False
        for key, value in sorted(pending.items(), key=lambda kv: not _is_choice(form, kv[0])):
            if _visible(form, key):
                _set_one(form, key, value)
                del pending[key]
                progressed = True
        if not progressed:
            break
    wrong = {k: v for k, v in pending.items() if not _is_empty(v)}
    assert not wrong, f"fields hidden in the browser but given values by the scenario: {wrong}"


def _is_choice(form: Locator, key: str) -> bool:
    wrapper = form.locator(f'[data-key="{key}"]')
    if wrapper.count():
        return (wrapper.first.get_attribute("data-field-type") or "") in (
            "checkbox",
            "checklist",
            "radio",
            "select",
        )
    return False


def read_form(form: Locator, keys: list[str]) -> dict[str, Any]:
    """The browser's current values of some fields (for "what I typed is still there")."""
    values: dict[str, Any] = {}
    for key in keys:
        inputs = form.locator(f'[name="{key}"]')
        first = inputs.first
        kind = (first.get_attribute("type") or "").lower()
        if kind == "radio":
            checked = form.locator(f'input[name="{key}"]:checked')
            values[key] = checked.get_attribute("value") if checked.count() else None
        elif kind == "checkbox" and inputs.count() > 1:
            values[key] = [
                inputs.nth(i).get_attribute("value")
                for i in range(inputs.count())
                if inputs.nth(i).is_checked()
            ]
        elif kind == "checkbox":
            values[key] = first.is_checked()
        else:
            values[key] = first.input_value()
    return values
