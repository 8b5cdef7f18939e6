"""Helpers for the reports tests: a sample decision, PDF text, the counting server type."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from io import BytesIO
from typing import Any

import pypdf

from reports import DecisionDocument, LegalRefLine, ReturnNote

PROPOSED_AT = datetime(2025, 3, 3, 9, 5, tzinfo=UTC)  # 10:05 CET
APPROVED_AT = datetime(2025, 7, 4, 12, 30, tzinfo=UTC)  # 14:30 CEST
RETURNED_AT = datetime(2025, 3, 4, 8, 0, tzinfo=UTC)  # 09:00 CET


def sample_document(**overrides: Any) -> DecisionDocument:
    """An approved, appealable D-A6 assessment in Swedish; override any field."""
    doc = DecisionDocument(
        municipality="Huddinge kommun",
        authority="Socialnämnden, Huddinge kommun",
        unit_name="Mottagningsenheten vuxna",
        case_number="IFO-2025-004217",
        procedure_label="Identifiering och inledande bedömning",
        decision_code="D-A6",
        decision_label="Bedömning förmodat offer",
        outcome_code="PRESUMED_TRAFFICKING_4_1A",
        outcome_label="Förmodat offer för människohandel",
        reasons="Första stycket om bedömningen.\nAndra raden med fler uppgifter.",
        legal_refs=(
            LegalRefLine(
                "MUNICIPAL_ULTIMATE_RESPONSIBILITY",
                "Kommunens yttersta ansvar",
                "SoL 2 kap. 1 §",
            ),
            LegalRefLine("TRAFFICKING", "Människohandel", "BrB 4 kap. 1 a §"),
        ),
        proposed_by="Anna Handläggarsson",
        proposed_at=PROPOSED_AT,
        approved_by="Bo Chefsson",
        approved_at=APPROVED_AT,
        appealable=True,
        appeal_info="",
        subject_label="Maria Exempelsdotter",
        protected_identity=False,
        document_id="DOC-7F3A9C",
        return_history=(ReturnNote("Bo Chefsson", RETURNED_AT, "Komplettera skälen."),),
        outcome_detail="Sexuella ändamål",
        delegation_ref="Delegationsordning punkt 4.2",
    )
    return replace(doc, **overrides)


def pdf_text(pdf: bytes) -> str:
    """All page text with whitespace collapsed (pypdf wraps lines where the PDF does)."""
    reader = pypdf.PdfReader(BytesIO(pdf))
    return " ".join(" ".join(page.extract_text().split()) for page in reader.pages)


@dataclass
class CountingServer:
    """A real HTTP server on 127.0.0.1 that counts every TCP connection it accepts."""

    port: int
    connections: list[str] = field(default_factory=list)

    def url(self, path: str = "/x") -> str:
        return f"http://127.0.0.1:{self.port}{path}"
