"""Decision and assessment documents (HTML and PDF/A) from plain data.

Framework-free: no Flask, no webapp, no ORM. The web layer builds a
:class:`~reports.context.DecisionDocument` and calls :func:`render_decision_pdf`.
"""

from reports.context import DecisionDocument, LegalRefLine, ReturnNote
from reports.render import (
    PDF_VARIANT,
    ReportRenderError,
    render_decision_html,
    render_decision_pdf,
)

__all__ = [
    "PDF_VARIANT",
    "DecisionDocument",
    "LegalRefLine",
    "ReportRenderError",
    "ReturnNote",
    "render_decision_html",
    "render_decision_pdf",
]
