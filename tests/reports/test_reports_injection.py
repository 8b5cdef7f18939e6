"""Stored XSS and template injection: user text is data, shown literally (security §6, 11–12)."""

from __future__ import annotations

import re
from dataclasses import fields, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from reports_testkit import pdf_text, sample_document

import reports
from reports import DecisionDocument, LegalRefLine, ReturnNote, render_decision_html
from reports.render import TEMPLATES_DIR, _environment, render_decision_pdf

XSS_SVG = "<svg onload=alert(1)>"
XSS_IMG = "<img src=x onerror=alert(1)>"
SSTI = "{{7*7}} {{ config }} {% raw %}x{% endraw %} {{ ''.__class__.__mro__ }}"
PAYLOAD = f'{XSS_SVG} {XSS_IMG} "><script>alert(2)</script> {SSTI}'

# Tags the decision template itself produces; anything else came from user text.
TEMPLATE_TAGS = {
    "html", "head", "meta", "title", "link", "body", "div", "header", "p", "span",
    "section", "h1", "h2", "table", "thead", "tbody", "tr", "th", "td", "ul", "li", "footer",
}  # fmt: skip


def _everywhere(doc: DecisionDocument, payload: str) -> DecisionDocument:
    """Put the payload into every free-text field, including nested ones."""
    changes: dict[str, Any] = {}
    for f in fields(doc):
        if isinstance(getattr(doc, f.name), str) and f.name != "lang":
            changes[f.name] = f"{f.name}: {payload}"
    changes["legal_refs"] = (LegalRefLine(payload, payload, payload),)
    changes["return_history"] = (ReturnNote(payload, doc.proposed_at, payload),)
    changes["linked_case_numbers"] = (payload,)
    changes["approved_by"] = payload
    return replace(doc, **changes)


class _TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs.update(name for name, _ in attrs)


@pytest.fixture(scope="module")
def hostile_doc() -> DecisionDocument:
    return _everywhere(sample_document(), PAYLOAD)


def test_html_escapes_every_field(hostile_doc: DecisionDocument) -> None:
    html = render_decision_html(hostile_doc)
    parser = _TagCollector()
    parser.feed(html)
    assert parser.tags <= TEMPLATE_TAGS
    assert not {a for a in parser.attrs if a.startswith("on")}
    assert "<svg" not in html and "<img" not in html and "<script" not in html
    assert "&lt;svg onload=alert(1)&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&#34;&gt;&lt;script&gt;" in html


def test_template_syntax_in_user_text_is_literal(hostile_doc: DecisionDocument) -> None:
    html = render_decision_html(hostile_doc)
    assert "{{7*7}}" in html
    assert "{{ config }}" in html
    assert "{% raw %}x{% endraw %}" in html
    assert "49" not in html
    assert "&lt;Config" not in html and "<Config" not in html


def test_pdf_shows_payloads_literally(hostile_doc: DecisionDocument) -> None:
    text = pdf_text(render_decision_pdf(hostile_doc))
    assert XSS_SVG in text
    assert XSS_IMG in text
    assert "{{7*7}}" in text
    assert "{{ config }}" in text
    assert "<script>alert(2)</script>" in text
    assert "49" not in text


def test_environment_is_sandboxed_autoescaping_and_strict() -> None:
    env = _environment()
    assert isinstance(env, ImmutableSandboxedEnvironment)
    assert env.autoescape is True
    assert env.undefined is StrictUndefined
    assert [Path(p) for p in env.loader.searchpath] == [TEMPLATES_DIR]  # type: ignore[union-attr]


def test_templates_never_mark_data_safe() -> None:
    banned = re.compile(r"\|\s*safe\b|Markup|autoescape\s+false|\binclude\b|\bimport\b")
    for template in TEMPLATES_DIR.rglob("*.html"):
        assert not banned.search(template.read_text()), template


def test_templates_and_css_reference_no_external_urls() -> None:
    package = Path(reports.__file__).parent
    external = re.compile(r"\b(https?|file|ftp|data):|//[a-z0-9]|@import|@font-face|\burl\(")
    for path in [*package.joinpath("templates").rglob("*"), *package.joinpath("assets").rglob("*")]:
        if path.suffix in {".html", ".css"}:
            assert not external.search(path.read_text()), path


def test_reports_package_imports_no_web_framework() -> None:
    package = Path(reports.__file__).parent
    banned = re.compile(r"^\s*(from|import)\s+(flask|webapp|flask_\w+|wtforms)\b", re.M)
    for source in package.rglob("*.py"):
        assert not banned.search(source.read_text()), source
