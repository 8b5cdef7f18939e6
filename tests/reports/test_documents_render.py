"""Every outgoing document template (reports/outgoing.py) renders to PDF/A from plain data:
its facts are printed, user text stays inert text, and no URL is ever fetched."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from io import BytesIO
from types import MappingProxyType

import pypdf
import pytest
from reports_testkit import CountingServer, pdf_text

from reports import ReportRenderError
from reports.outgoing import KINDS, LegalRefText, OutgoingDocument, render_outgoing_pdf

#: One fact each kind must print (key, value) besides the common header.
KIND_FACTS: dict[str, tuple[str, str]] = {
    "protection_assessment": ("immediate_risk", "Hög risk"),
    "lvu6_decision": ("court_case_number", "UM 1234-26"),
    "lvu_care_application": ("care_case_number", "UM 5678-26"),
    "guardian_notice": ("recipients", "Vårdnadshavare Ett"),
    "police_report": ("suspected_crimes", "Människohandel"),
    "housing_notice": ("huge_property_id", "HUGE-4711"),
    "referral": ("target", "Mika-mottagningen"),
    "reflection_application": ("exploitation_forms", "Tiggeri"),
    "reporter_feedback": ("report_received_on", "2026-03-02"),
    "closure_note": ("closure_reason", "Målen uppnådda"),
}
INJECTION = "{{7*7}} <img src=http://169.254.169.254/> {% raw %}"


def _doc(kind: str, **extra: str) -> OutgoingDocument:
    key, value = KIND_FACTS[kind]
    facts = {
        key: value,
        "reasons": INJECTION,
        "summary": INJECTION,
        "status": "investigation_opened",
    }
    facts.update(extra)
    return OutgoingDocument(
        kind=kind,
        title="Dokument",
        municipality="Huddinge kommun",
        authority="Socialnämnden, Huddinge kommun",
        unit_name="Barn och unga",
        case_number="BU-2026-00042",
        issued_on=date(2026, 3, 2),
        recipient="Mottagaren AB",
        subject_label="Skyddad identitet",
        protected_identity=True,
        contact_person="Anna Handläggarsson",
        legal_refs=(LegalRefText("Koppleri", "BrB 6 kap. 12 §"),),
        facts=MappingProxyType(facts),
    )


def _text(pdf: bytes) -> str:
    return pdf_text(pdf)


def test_every_kind_has_a_sample() -> None:
    assert set(KIND_FACTS) == KINDS


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_kind_renders_its_facts_as_pdf_a(kind: str) -> None:
    pdf = render_outgoing_pdf(_doc(kind))
    assert pdf.startswith(b"%PDF")
    root = pypdf.PdfReader(BytesIO(pdf)).trailer["/Root"]
    assert 'pdfaid:part="2"' in root["/Metadata"].get_object().get_data().decode()
    text = _text(pdf)
    assert KIND_FACTS[kind][1] in text
    for common in ("BU-2026-00042", "2026-03-02", "Barn och unga", "Anna Handläggarsson"):
        assert common in text, common
    assert "Skyddade personuppgifter" in text
    assert "BrB 6 kap. 12 §" in text


@pytest.mark.parametrize("kind", ["protection_assessment", "police_report", "closure_note"])
def test_user_text_is_inert(kind: str) -> None:
    text = _text(render_outgoing_pdf(_doc(kind)))
    assert "{{7*7}}" in text
    assert "49" not in text
    assert "<img src=http://169.254.169.254/>" in text


def test_no_url_is_fetched_from_facts(counting_server: CountingServer) -> None:
    url = counting_server.url("/x.css")
    doc = _doc("housing_notice", address=f'<link rel="stylesheet" href="{url}">')
    text = _text(render_outgoing_pdf(doc))
    assert counting_server.connections == []
    assert "SSRF-CANARY" not in text


def test_draft_is_marked_and_approval_is_printed() -> None:
    held = _text(render_outgoing_pdf(replace(_doc("referral"), awaiting_approval=True)))
    assert "UTKAST" in held
    approved = replace(
        _doc("referral"),
        approved_by="Bo Chefsson",
        approved_at=datetime(2026, 3, 3, 8, 0, tzinfo=UTC),
    )
    text = _text(render_outgoing_pdf(approved))
    assert "UTKAST" not in text
    assert "Godkänt av enhetschef: Bo Chefsson, 2026-03-03 09:00" in text


def test_housing_notice_reminds_of_the_law_and_asks_for_acknowledgement() -> None:
    text = _text(
        render_outgoing_pdf(_doc("housing_notice", acknowledgement_requested_by="2026-03-09"))
    )
    assert "6 kap. 12 §" in text and "12 kap. 42 §" in text
    assert "bekräfta" in text and "2026-03-09" in text
    assert "inga uppgifter om enskilda" in text


def test_unknown_kind_and_naive_times_are_refused() -> None:
    with pytest.raises(ValueError):
        render_outgoing_pdf(replace(_doc("referral"), kind="../decision"))
    with pytest.raises(ValueError):
        render_outgoing_pdf(replace(_doc("referral"), approved_at=datetime(2026, 3, 3, 8, 0)))


def test_render_error_type_is_exported() -> None:
    assert issubclass(ReportRenderError, Exception)
