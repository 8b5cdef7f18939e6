"""A person's access extract: who read or changed their case data, when and why.

For a data-subject request (GDPR Art. 15; CJEU C-579/21 *Pankki S*: the dates and purposes
of consultations). Staff names are left out unless the auditor decides they are needed for
the person to exercise their rights (security.md §2.1 LEG-3); the role and unit are always
shown. No personnummer is ever printed: the person is named by label and internal id.

Framework-free like the rest of reports/: the web layer fills in the plain data below.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from reports.render import format_local, render_html, render_pdf

MAX_LINES = 20_000
_PNR_LIKE = re.compile(r"\b(?:\d{6}|\d{8})[-+]?\d{4}\b")


@dataclass(frozen=True, slots=True)
class AccessLine:
    """One access: when, in which case, by which role and unit (and person), what and why."""

    at: datetime
    case_number: str
    role_unit: str
    action: str
    purpose: str
    staff_name: str = ""


@dataclass(frozen=True, slots=True)
class AccessExtractDocument:
    """Everything printed on the extract. Datetimes must be timezone-aware."""

    municipality: str
    authority: str
    subject_label: str
    subject_ref: str
    protected_identity: bool
    case_numbers: tuple[str, ...]
    lines: tuple[AccessLine, ...]
    generated_at: datetime
    generated_by: str
    include_staff_names: bool = False
    request_ref: str = ""
    lang: str = "sv"


_SV: dict[str, str] = {
    "title": "Utdrag ur åtkomstloggen",
    "lead": (
        "Utdraget visar när personuppgifter i ärendena nedan har lästs eller behandlats av "
        "socialtjänstens personal, och för vilket ändamål."
    ),
    "secrecy": "Sekretess enligt OSL 26 kap. 1 §",
    "protected_banner": (
        "Skyddade personuppgifter – uppgifter om vistelseort och kontaktvägar får inte lämnas ut."
    ),
    "subject": "Avser",
    "subject_ref": "Person-id",
    "cases": "Ärenden",
    "request_ref": "Begäran",
    "generated_at": "Upprättat",
    "generated_by": "Upprättat av",
    "accesses": "Åtkomster",
    "at": "Tidpunkt",
    "case": "Ärende",
    "who": "Roll och enhet",
    "staff": "Medarbetare",
    "action": "Åtgärd",
    "purpose": "Ändamål",
    "none": "Inga åtkomster är loggade.",
    "names_note": (
        "Medarbetarnas namn redovisas inte (EU-domstolen, mål C-579/21); roll och enhet anges."
    ),
    "time_zone_note": "Tider anges i svensk tid (Europe/Stockholm).",
    "count": "Antal åtkomster",
}
_EN: dict[str, str] = {
    "title": "Access log extract",
    "lead": (
        "This extract shows when personal data in the cases below was read or processed by "
        "social services staff, and for what purpose."
    ),
    "secrecy": "Secrecy under OSL chapter 26 section 1",
    "protected_banner": (
        "Protected personal data – whereabouts and contact details must not be disclosed."
    ),
    "subject": "Concerns",
    "subject_ref": "Person id",
    "cases": "Cases",
    "request_ref": "Request",
    "generated_at": "Produced",
    "generated_by": "Produced by",
    "accesses": "Accesses",
    "at": "Time",
    "case": "Case",
    "who": "Role and unit",
    "staff": "Staff member",
    "action": "Action",
    "purpose": "Purpose",
    "none": "No accesses are logged.",
    "names_note": ("Staff names are not given (CJEU case C-579/21); the role and unit are shown."),
    "time_zone_note": "Times are Swedish local time (Europe/Stockholm).",
    "count": "Number of accesses",
}

_ACTIONS: dict[str, tuple[str, str]] = {
    "case:created": ("Registrerade ärendet", "Registered the case"),
    "case:viewed": ("Läste ärendet", "Read the case"),
    "case:break_glass": ("Nödåtkomst till ärendet", "Emergency access to the case"),
    "task:viewed": ("Öppnade ett steg", "Opened a step"),
    "task:claimed": ("Tog ett steg", "Took a step"),
    "task:unclaimed": ("Lämnade tillbaka ett steg", "Released a step"),
    "task:draft_saved": ("Sparade utkast", "Saved a draft"),
    "task:submitted": ("Skickade in ett steg", "Submitted a step"),
    "task:completed": ("Slutförde ett steg", "Completed a step"),
    "decision:proposed": ("Föreslog beslut", "Proposed a decision"),
    "decision:approved": ("Fattade beslut", "Approved a decision"),
    "decision:returned": ("Återremitterade beslut", "Returned a decision"),
    "document:created": ("Upprättade dokument", "Produced a document"),
    "document:downloaded": ("Hämtade dokument", "Downloaded a document"),
    "journal:written": ("Skrev i journalen", "Wrote in the journal"),
}
_REASONS: dict[str, tuple[str, str]] = {
    "member": ("handläggning i ärendet", "handling the case"),
    "oversight": ("arbetsledning inom enheten", "supervision within the unit"),
    "task": ("tilldelad uppgift", "an assigned step"),
    "view": ("läsning", "reading"),
    "intake": ("registrering", "registration"),
}
_PURPOSE = re.compile(r"(?P<head>[^()]*?)\s*\((?P<reason>[a-z_]+)\)\s*\Z")


def labels_for(lang: str) -> Mapping[str, str]:
    """The static texts in ``lang`` (Swedish unless "en")."""
    return MappingProxyType(_EN if lang == "en" else _SV)


def action_label(action: str, lang: str) -> str:
    """An audit action in words (the code itself when unknown)."""
    pair = _ACTIONS.get(action)
    return (pair[1] if lang == "en" else pair[0]) if pair else action


def purpose_label(purpose: str | None, lang: str) -> str:
    """An access purpose such as ``"view (oversight)"`` in words."""
    if not purpose:
        return ""
    index = 1 if lang == "en" else 0

    def word(token: str) -> str:
        pair = _REASONS.get(token.strip())
        return pair[index] if pair else token.strip()

    match = _PURPOSE.fullmatch(purpose)
    if match:
        return f"{word(match['head'])} ({word(match['reason'])})"
    return word(purpose)


def _check(doc: AccessExtractDocument) -> None:
    for stamp in (doc.generated_at, *(line.at for line in doc.lines)):
        format_local(stamp)
    if len(doc.lines) > MAX_LINES:
        raise ValueError(f"an access extract holds at most {MAX_LINES} lines")
    texts = [doc.subject_label, doc.subject_ref, doc.request_ref, *doc.case_numbers]
    texts += [part for line in doc.lines for part in (line.purpose, line.role_unit)]
    if any(_PNR_LIKE.search(text) for text in texts):
        raise ValueError("an access extract must not show a personnummer")


def _context(doc: AccessExtractDocument) -> dict[str, object]:
    _check(doc)
    return {"doc": doc, "t": labels_for(doc.lang)}


def render_access_extract_html(doc: AccessExtractDocument) -> str:
    """The extract as standalone HTML."""
    return render_html("access_extract.html", _context(doc))


def render_access_extract_pdf(doc: AccessExtractDocument) -> bytes:
    """The extract as PDF/A bytes (A4)."""
    return render_pdf("access_extract.html", _context(doc))


__all__ = [
    "AccessExtractDocument",
    "AccessLine",
    "action_label",
    "labels_for",
    "purpose_label",
    "render_access_extract_html",
    "render_access_extract_pdf",
]
