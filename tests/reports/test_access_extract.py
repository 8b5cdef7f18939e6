"""A person's access extract (Art. 15, C-579/21): dates, roles, units and purposes as PDF/A,
staff names only when asked for, never a personnummer, and user text stays inert."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from reports_testkit import CountingServer, pdf_text

from reports.access_extract import (
    AccessExtractDocument,
    AccessLine,
    action_label,
    purpose_label,
    render_access_extract_html,
    render_access_extract_pdf,
)

READ_AT = datetime(2026, 3, 4, 22, 30, tzinfo=UTC)  # 23:30 in Stockholm (CET)
CREATED_AT = datetime(2026, 3, 4, 7, 0, tzinfo=UTC)


def extract(**overrides: object) -> AccessExtractDocument:
    doc = AccessExtractDocument(
        municipality="Huddinge kommun",
        authority="Socialnämnden, Huddinge kommun",
        subject_label="Testperson Ett",
        subject_ref="P-17",
        protected_identity=False,
        case_numbers=("ID-2026-00001", "ID-2026-00003"),
        lines=(
            AccessLine(
                at=CREATED_AT,
                case_number="ID-2026-00001",
                role_unit="Socialsekreterare, Vuxenenheten",
                action=action_label("case:created", "sv"),
                purpose=purpose_label("intake", "sv"),
                staff_name="Hanna Handläggare",
            ),
            AccessLine(
                at=READ_AT,
                case_number="ID-2026-00001",
                role_unit="Arbetsledare, Vuxenenheten",
                action=action_label("case:viewed", "sv"),
                purpose=purpose_label("night check (oversight)", "sv"),
                staff_name="Anna Arbetsledare",
            ),
        ),
        generated_at=datetime(2026, 3, 5, 8, 0, tzinfo=UTC),
        generated_by="Greta Granskare",
        request_ref="SN 2026/117",
    )
    return replace(doc, **overrides)  # type: ignore[arg-type]


def test_lists_dates_roles_units_and_purposes_without_names() -> None:
    text = pdf_text(render_access_extract_pdf(extract()))
    assert "Utdrag ur åtkomstloggen" in text and "P-17" in text and "SN 2026/117" in text
    assert "2026-03-04 08:00" in text and "2026-03-04 23:30" in text  # Stockholm time
    assert "Arbetsledare, Vuxenenheten" in text and "Läste ärendet" in text
    assert "night check (arbetsledning inom enheten)" in text
    assert "ID-2026-00003" in text
    assert "Anna Arbetsledare" not in text and "Hanna" not in text
    assert "C-579/21" in text


def test_staff_names_when_asked_for_and_english() -> None:
    text = pdf_text(render_access_extract_pdf(extract(include_staff_names=True, lang="en")))
    assert "Access log extract" in text
    assert "Anna Arbetsledare" in text and "Hanna Handläggare" in text
    assert "C-579/21" not in text


def test_labels() -> None:
    assert action_label("case:viewed", "en") == "Read the case"
    assert action_label("something:new", "sv") == "something:new"
    assert purpose_label("view (member)", "en") == "reading (handling the case)"
    assert purpose_label("decision 5 (task)", "sv") == "decision 5 (tilldelad uppgift)"
    assert purpose_label(None, "sv") == ""


@pytest.mark.parametrize("field", ["subject_label", "request_ref", "subject_ref"])
@pytest.mark.parametrize("pnr", ["198112189876", "19811218-9876", "811218-9876", "8112189876"])
def test_a_personnummer_is_refused(field: str, pnr: str) -> None:
    with pytest.raises(ValueError, match="personnummer"):
        render_access_extract_html(extract(**{field: f"Person {pnr}"}))


def test_a_personnummer_in_a_purpose_is_refused() -> None:
    line = replace(extract().lines[1], purpose="läste 19811218-9876")
    with pytest.raises(ValueError, match="personnummer"):
        render_access_extract_html(extract(lines=(line,)))


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        render_access_extract_html(extract(generated_at=datetime(2026, 3, 5, 8, 0)))


def test_user_text_is_inert(counting_server: CountingServer) -> None:
    hostile = (
        f'<img src="{counting_server.url("/img")}"> {{{{ 7*7 }}}} '
        f"<link rel=stylesheet href={counting_server.url('/css')}>"
    )
    line = replace(extract().lines[1], purpose=hostile, role_unit=hostile)
    doc = extract(lines=(line,), subject_label=hostile, request_ref="{% raw %}x")
    html = render_access_extract_html(doc)
    assert "<img" not in html and "&lt;img" in html
    text = pdf_text(render_access_extract_pdf(doc))
    assert "{{ 7*7 }}" in text and "49" not in text
    assert counting_server.connections == []
