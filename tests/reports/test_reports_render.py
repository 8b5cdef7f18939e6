"""Content of rendered decision documents: the PDF a social worker reads and archives."""

from __future__ import annotations

from datetime import datetime
from io import BytesIO
from typing import Any

import pypdf
import pytest
from reports_testkit import pdf_text, sample_document

from reports import PDF_VARIANT, render_decision_html, render_decision_pdf
from reports.fetcher import bundled_assets
from reports.labels import LABELS
from reports.render import format_local


def _root(reader: pypdf.PdfReader) -> Any:
    """The document catalog, typed loosely (pypdf's generic objects are not indexable)."""
    return reader.trailer["/Root"]


def _fonts(page: pypdf.PageObject) -> Any:
    return page["/Resources"]["/Font"]  # type: ignore[index]


@pytest.fixture(scope="module")
def approved_pdf() -> bytes:
    return render_decision_pdf(sample_document())


@pytest.fixture(scope="module")
def approved_text(approved_pdf: bytes) -> str:
    return pdf_text(approved_pdf)


def test_pdf_is_a4_pdf(approved_pdf: bytes) -> None:
    assert approved_pdf.startswith(b"%PDF-")
    page = pypdf.PdfReader(BytesIO(approved_pdf)).pages[0]
    assert round(float(page.mediabox.width)) == 595
    assert round(float(page.mediabox.height)) == 842


def test_core_facts_are_in_pdf_text(approved_text: str) -> None:
    for expected in (
        "Huddinge kommun",
        "Socialnämnden, Huddinge kommun",
        "Sekretess enligt OSL 26 kap. 1 §",
        "IFO-2025-004217",
        "DOC-7F3A9C",
        "D-A6",
        "Bedömning förmodat offer",
        "Förmodat offer för människohandel",
        "Sexuella ändamål",
        "Första stycket om bedömningen.",
        "Andra raden med fler uppgifter.",
        "Kommunens yttersta ansvar",
        "SoL 2 kap. 1 §",
        "BrB 4 kap. 1 a §",
        "Anna Handläggarsson",
        "Bo Chefsson",
        "Delegationsordning punkt 4.2",
        "Maria Exempelsdotter",
        "Komplettera skälen.",
    ):
        assert expected in approved_text, expected
    assert "UTKAST" not in approved_text
    assert "Ej beslutat" not in approved_text


def test_dates_are_stockholm_local_time(approved_text: str) -> None:
    assert "Föreslaget den 2025-03-03 10:05" in approved_text  # CET, UTC+1
    assert "Beslutat den 2025-07-04 14:30" in approved_text  # CEST, UTC+2
    assert "2025-03-04 09:00" in approved_text  # return note


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        render_decision_html(sample_document(proposed_at=datetime(2025, 3, 3, 9, 5)))
    with pytest.raises(ValueError):
        format_local(datetime(2025, 1, 1))


def test_reasons_keep_line_breaks() -> None:
    html = render_decision_html(sample_document(reasons="rad ett\nrad två"))
    assert '<div class="prewrap">rad ett\nrad två</div>' in html
    css = bundled_assets()["decision.css"][0].decode()
    assert ".prewrap { white-space: pre-wrap;" in css
    text = pypdf.PdfReader(
        BytesIO(render_decision_pdf(sample_document(reasons="rad ett\nrad två")))
    )
    assert "rad ett\nrad två" in text.pages[0].extract_text()


def test_secrecy_notice_and_page_numbers_on_every_page() -> None:
    long_reasons = "\n".join(f"Stycke {i}: " + "text " * 40 for i in range(40))
    pdf = render_decision_pdf(sample_document(reasons=long_reasons))
    pages = pypdf.PdfReader(BytesIO(pdf)).pages
    assert len(pages) >= 3
    for number, page in enumerate(pages, start=1):
        text = " ".join(page.extract_text().split())
        assert "Sekretess enligt OSL 26 kap. 1 §" in text
        assert f"{number} / {len(pages)}" in text  # from the bundled CSS (@page counters)
        assert "DOC-7F3A9C" in text


def test_appeal_section_only_when_appealable(approved_text: str) -> None:
    assert "Hur man överklagar" in approved_text
    assert "förvaltningsrätten" in approved_text
    assert "inom tre veckor" in approved_text
    assert "Socialnämnden, Huddinge kommun, inte direkt" in approved_text
    assert "kan inte överklagas" not in approved_text

    text = pdf_text(render_decision_pdf(sample_document(appealable=False)))
    assert "Hur man överklagar" not in text
    assert "Beslutet kan inte överklagas eftersom det är en intern bedömning." in text


def test_custom_appeal_info_replaces_default() -> None:
    html = render_decision_html(sample_document(appeal_info="Särskild överklagandetext."))
    assert "Särskild överklagandetext." in html
    assert "inom tre veckor" not in html


@pytest.mark.parametrize(
    "overrides",
    [
        {"approved_by": None, "approved_at": None},
        {"approved_at": None},
        {"approved_by": None},
    ],
)
def test_unapproved_proposal_is_marked_draft(overrides: dict[str, object]) -> None:
    doc = sample_document(**overrides)
    assert doc.is_draft
    text = pdf_text(render_decision_pdf(doc))
    assert "UTKAST – ej beslutat" in text
    assert "Beslutat av Ej beslutat" in text
    assert "Beslutat den Ej beslutat" in text
    assert "2025-07-04 14:30" not in text


def test_draft_watermark_on_every_page() -> None:
    long_reasons = "\n".join("text " * 60 for _ in range(30))
    pdf = render_decision_pdf(sample_document(approved_by=None, reasons=long_reasons))
    pages = pypdf.PdfReader(BytesIO(pdf)).pages
    assert len(pages) >= 2
    for page in pages:
        assert "UTKAST – ej beslutat" in " ".join(page.extract_text().split())


def test_protected_identity_banner() -> None:
    text = pdf_text(
        render_decision_pdf(
            sample_document(protected_identity=True, subject_label="Skyddad identitet")
        )
    )
    assert "Skyddade personuppgifter" in text
    assert "Skyddad identitet" in text
    assert "Maria Exempelsdotter" not in text


def test_no_address_field_exists() -> None:
    from dataclasses import fields

    from reports import DecisionDocument

    names = {f.name for f in fields(DecisionDocument)}
    assert not {n for n in names if "address" in n or "adress" in n}


def test_english_variant() -> None:
    doc = sample_document(lang="en", appealable=True)
    text = pdf_text(render_decision_pdf(doc))
    for expected in (
        "Case number",
        "Document ID",
        "Outcome",
        "Reasons for the decision",
        "Legal basis",
        "Decided by Bo Chefsson",
        "Decided at 2025-07-04 14:30",
        "How to appeal",
        "within three weeks",
        "OSL 26 kap. 1 §",
    ):
        assert expected in text, expected
    assert "Ärendenummer" not in text
    assert "Hur man överklagar" not in text

    draft = pdf_text(render_decision_pdf(sample_document(lang="en", approved_by=None)))
    assert "DRAFT – not decided" in draft
    assert "Decided by Not decided" in draft

    internal = pdf_text(render_decision_pdf(sample_document(lang="en", appealable=False)))
    assert "cannot be appealed as it is an internal assessment" in internal


def test_html_lang_attribute_follows_document() -> None:
    assert '<html lang="en">' in render_decision_html(sample_document(lang="en"))
    assert '<html lang="sv">' in render_decision_html(sample_document())


def test_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported document language"):
        render_decision_html(sample_document(lang="de"))


def test_label_tables_have_the_same_keys() -> None:
    assert set(LABELS["sv"]) == set(LABELS["en"])


def test_metadata_title_without_personal_data(approved_pdf: bytes) -> None:
    reader = pypdf.PdfReader(BytesIO(approved_pdf))
    meta = reader.metadata
    assert meta is not None
    assert meta.title == "Lotsen beslutsdokument D-A6"
    assert meta.author is None
    assert meta.subject is None
    xmp = _root(reader)["/Metadata"].get_object().get_data().decode()
    info = " ".join(str(v) for v in meta.values())
    for personal in (
        "IFO-2025-004217",
        "DOC-7F3A9C",
        "Anna",
        "Bo Chefsson",
        "Maria",
        "Första stycket",
        "Sexuella",
    ):
        assert personal not in info
        assert personal not in xmp


def test_pdf_a_variant_and_output_intent(approved_pdf: bytes) -> None:
    assert PDF_VARIANT == "pdf/a-2u"
    reader = pypdf.PdfReader(BytesIO(approved_pdf))
    root = _root(reader)
    xmp = root["/Metadata"].get_object().get_data().decode()
    assert 'pdfaid:part="2"' in xmp
    assert 'pdfaid:conformance="U"' in xmp
    intents = root["/OutputIntents"]
    assert intents[0].get_object()["/S"] == "/GTS_PDFA1"
    assert "/EmbeddedFiles" not in root.get("/Names", {})


def test_dejavu_sans_is_embedded(approved_pdf: bytes) -> None:
    reader = pypdf.PdfReader(BytesIO(approved_pdf))
    fonts = _fonts(reader.pages[0])
    base_fonts = {str(fonts[key].get_object()["/BaseFont"]) for key in fonts}
    assert base_fonts
    assert all("DejaVu-Sans" in name for name in base_fonts), base_fonts


def test_long_unbroken_text_stays_on_the_page() -> None:
    """Caller text without spaces wraps instead of running off the A4 page."""
    from dataclasses import replace

    from weasyprint import HTML

    from reports.fetcher import AssetOnlyFetcher

    base = sample_document()
    doc = sample_document(
        municipality="M" * 300,
        authority="A" * 300,
        unit_name="U" * 300,
        case_number="K" * 400,
        subject_label="S" * 300,
        reasons="R" * 400 + " slut",
        legal_refs=(replace(base.legal_refs[0], citation="L" * 300),),
        return_history=(replace(base.return_history[0], by="B" * 200, comment="C" * 500),),
    )
    rendered = HTML(string=render_decision_html(doc), url_fetcher=AssetOnlyFetcher()).render()
    overflowing: list[str] = []

    def walk(box: object) -> None:
        if type(box).__name__ == "TextBox":
            right = box.position_x + box.width  # type: ignore[attr-defined]
            if right > rendered.pages[0].width:
                overflowing.append(box.text[:10])  # type: ignore[attr-defined]
        for child in getattr(box, "children", None) or ():
            walk(child)

    for page in rendered.pages:
        walk(page._page_box)  # WeasyPrint internal; fine for a layout test
    assert overflowing == []


def test_oversized_document_is_refused() -> None:
    from reports.render import MAX_TEXT_CHARS

    with pytest.raises(ValueError, match="exceeds"):
        render_decision_html(sample_document(reasons="x" * (MAX_TEXT_CHARS + 1)))
