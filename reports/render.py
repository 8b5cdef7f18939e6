"""Render decision documents to HTML and PDF/A.

Why this shape: user text reaches the output only as Jinja *data* in an autoescaping,
immutable sandbox (no template is ever built from user input; security.md §1 rows 21–22),
and WeasyPrint runs with a fetcher that serves bundled assets only (§3.2), so no text a
user typed can make the renderer read a file or open a connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from datetime import datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from weasyprint import HTML
from weasyprint.urls import FatalURLFetchingError

from reports.context import DecisionDocument
from reports.fetcher import AssetOnlyFetcher, asset_url
from reports.labels import labels_for

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
LOCAL_TZ = ZoneInfo("Europe/Stockholm")
DATETIME_FORMAT = "%Y-%m-%d %H:%M"

#: Upper bound on the text of one document (about 60 A4 pages). Layout time grows with
#: text length, so an absurd value must not tie up a worker (security.md §3.2).
MAX_TEXT_CHARS = 200_000

#: PDF/A-2u: archival PDF with Unicode text mapping (searchable). PDF/A-2 rather than 3
#: because a decision record must never carry embedded attachments.
PDF_VARIANT = "pdf/a-2u"

#: Rendering options pinned explicitly so a change of WeasyPrint defaults cannot widen
#: what is fetched or embedded.
_PDF_OPTIONS: Mapping[str, object] = {
    "pdf_variant": PDF_VARIANT,
    "presentational_hints": False,
    "attachments": None,
    "stylesheets": None,
    "pdf_forms": False,
    "custom_metadata": False,
    "xmp_metadata": None,
}


class ReportRenderError(Exception):
    """The PDF could not be produced safely (e.g. a non-asset resource was requested)."""


def format_local(value: datetime) -> str:
    """Format an aware datetime as ``YYYY-MM-DD HH:MM`` in Europe/Stockholm time."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("decision document datetimes must be timezone-aware")
    return value.astimezone(LOCAL_TZ).strftime(DATETIME_FORMAT)


@cache
def _environment() -> ImmutableSandboxedEnvironment:
    """One shared, sandboxed, autoescaping Jinja environment over reports/templates only."""
    env = ImmutableSandboxedEnvironment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters["local_dt"] = format_local
    env.globals["asset_url"] = asset_url
    return env


def render_decision_html(doc: DecisionDocument) -> str:
    """Render the decision/assessment record as a standalone HTML string."""
    _check_document(doc)
    t = labels_for(doc.lang)
    appeal_text = doc.appeal_info.strip() or t["appeal_default"].format(authority=doc.authority)
    template = _environment().get_template("decision.html")
    return template.render(
        doc=doc,
        t=t,
        is_draft=doc.is_draft,
        appeal_text=appeal_text,
        meta_title=f"{t['meta_title']} {doc.decision_code}",
    )


def render_html(template_name: str, context: Mapping[str, object]) -> str:
    """Render any template of reports/templates in the sandbox (values are data, escaped)."""
    return _environment().get_template(template_name).render(**context)


def render_pdf(template_name: str, context: Mapping[str, object]) -> bytes:
    """Render any template of reports/templates to PDF/A with the asset-only fetcher."""
    return html_to_pdf(render_html(template_name, context))


def render_decision_pdf(doc: DecisionDocument) -> bytes:
    """Render the decision/assessment record as PDF/A bytes (A4)."""
    return html_to_pdf(render_decision_html(doc))


def html_to_pdf(html: str) -> bytes:
    """Turn template output into PDF with the asset-only fetcher; never pass user HTML here."""
    fetcher = AssetOnlyFetcher()
    try:
        pdf = HTML(string=html, base_url=None, url_fetcher=fetcher).write_pdf(**_PDF_OPTIONS)
    except FatalURLFetchingError as exc:
        # BaseException in WeasyPrint; re-raise as a normal error so web workers survive.
        raise ReportRenderError("a non-bundled resource was requested while rendering") from exc
    if fetcher.refused:
        # Some WeasyPrint paths (SVG drawing) swallow fetch errors: still fail closed.
        raise ReportRenderError("a non-bundled resource was requested while rendering")
    if not isinstance(pdf, bytes):
        raise ReportRenderError("WeasyPrint returned no PDF bytes")
    return pdf


def _check_document(doc: DecisionDocument) -> None:
    """Fail early on naive datetimes and oversized text instead of printing nonsense."""
    stamps: list[datetime] = [doc.proposed_at, *(note.at for note in doc.return_history)]
    stamps += [d for d in (doc.approved_at, doc.printed_at) if d is not None]
    for stamp in stamps:
        format_local(stamp)
    texts = [getattr(doc, f.name) for f in fields(doc)]
    texts += [part for ref in doc.legal_refs for part in (ref.key, ref.label, ref.citation)]
    texts += [part for note in doc.return_history for part in (note.by, note.comment)]
    texts += list(doc.linked_case_numbers)
    if sum(len(text) for text in texts if isinstance(text, str)) > MAX_TEXT_CHARS:
        raise ValueError(f"decision document text exceeds {MAX_TEXT_CHARS} characters")


__all__ = [
    "MAX_TEXT_CHARS",
    "PDF_VARIANT",
    "ReportRenderError",
    "format_local",
    "html_to_pdf",
    "render_decision_html",
    "render_decision_pdf",
    "render_html",
    "render_pdf",
]
