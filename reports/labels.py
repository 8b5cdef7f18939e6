"""Static labels for decision documents in Swedish (default) and English.

Why here and not flask-babel: reports/ is framework-free and renders outside requests.
Texts marked [GK] come from general knowledge of Swedish administrative law and must be
checked by the kommunjurist before the document is used with the public
(domain.md §0, §2.1: FL 32–33 §§).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

DEFAULT_LANG = "sv"

_SV: dict[str, str] = {
    "doc_kind": "Beslut / bedömning",
    "meta_title": "Lotsen beslutsdokument",
    "secrecy": "Sekretess enligt OSL 26 kap. 1 §",
    "draft_banner": "UTKAST – ej beslutat",
    "draft_note": "Detta är ett förslag till beslut. Det gäller inte förrän det har beslutats.",
    "protected_banner": (
        "Skyddade personuppgifter – uppgifter om vistelseort och kontaktvägar får inte lämnas ut."
    ),
    "unit": "Enhet",
    "case_number": "Ärendenummer",
    "document_id": "Dokument-id",
    "procedure": "Process",
    "decision_type": "Beslutstyp",
    "subject": "Avser",
    "linked_cases": "Kopplade ärenden",
    "outcome": "Utfall",
    "outcome_detail": "Precisering",
    "reasons": "Skäl för beslutet",
    "legal_refs": "Rättslig grund",
    "no_legal_refs": "Ingen rättslig grund angiven.",
    "signatures": "Förslag och beslut",
    "proposed_by": "Föreslaget av",
    "proposed_at": "Föreslaget den",
    "approved_by": "Beslutat av",
    "approved_at": "Beslutat den",
    "not_decided": "Ej beslutat",
    "delegation": "Beslutet fattat med stöd av delegation",
    "return_history": "Återremisser",
    "return_by": "Återremitterat av",
    "return_at": "Tidpunkt",
    "return_comment": "Kommentar",
    "appeal_heading": "Hur man överklagar",
    # [GK] FL 33 § / SoL: appeal to förvaltningsrätten, lodged with the committee within
    # three weeks from receipt. Verify wording with the kommunjurist.
    "appeal_default": (
        "Om du inte är nöjd med beslutet kan du överklaga det till förvaltningsrätten. "
        "Skicka överklagandet skriftligen till {authority}, inte direkt till "
        "förvaltningsrätten. Överklagandet måste ha kommit in inom tre veckor från den dag "
        "du fick del av beslutet. Skriv vilket beslut du överklagar, hur du vill att det "
        "ska ändras och varför."
    ),
    "not_appealable": "Beslutet kan inte överklagas eftersom det är en intern bedömning.",
    "printed_at": "Utskrivet",
    "time_zone_note": "Tider anges i svensk tid.",
}

_EN: dict[str, str] = {
    "doc_kind": "Decision / assessment",
    "meta_title": "Lotsen decision document",
    "secrecy": "Confidential under OSL 26 kap. 1 § (social services secrecy)",
    "draft_banner": "DRAFT – not decided",
    "draft_note": "This is a proposed decision. It has no effect until it has been decided.",
    "protected_banner": (
        "Protected personal data – whereabouts and contact details must not be disclosed."
    ),
    "unit": "Unit",
    "case_number": "Case number",
    "document_id": "Document ID",
    "procedure": "Procedure",
    "decision_type": "Decision type",
    "subject": "Concerning",
    "linked_cases": "Linked cases",
    "outcome": "Outcome",
    "outcome_detail": "Specification",
    "reasons": "Reasons for the decision",
    "legal_refs": "Legal basis",
    "no_legal_refs": "No legal basis stated.",
    "signatures": "Proposal and decision",
    "proposed_by": "Proposed by",
    "proposed_at": "Proposed at",
    "approved_by": "Decided by",
    "approved_at": "Decided at",
    "not_decided": "Not decided",
    "delegation": "Decided under delegation",
    "return_history": "Returned for revision",
    "return_by": "Returned by",
    "return_at": "Time",
    "return_comment": "Comment",
    "appeal_heading": "How to appeal",
    # [GK] see the Swedish text.
    "appeal_default": (
        "If you are not satisfied with the decision you can appeal to the administrative "
        "court (förvaltningsrätten). Send your appeal in writing to {authority}, not "
        "directly to the court. The appeal must arrive within three weeks from the day you "
        "received the decision. State which decision you are appealing, how you want it "
        "changed and why."
    ),
    "not_appealable": "This decision cannot be appealed as it is an internal assessment.",
    "printed_at": "Printed",
    "time_zone_note": "Times are Swedish local time.",
}

LABELS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {"sv": MappingProxyType(_SV), "en": MappingProxyType(_EN)}
)
SUPPORTED_LANGS: frozenset[str] = frozenset(LABELS)


def labels_for(lang: str) -> Mapping[str, str]:
    """Return the label table for ``lang``; an unknown language is a caller bug."""
    try:
        return LABELS[lang]
    except KeyError:
        raise ValueError(f"unsupported document language: {lang!r}") from None
