"""Triage of outside reports by a unit's intake staff: the queue, one report, earlier cases of
the same person, and the three outcomes: link to an earlier case, start a procedure, or no
action with a reason. A report is triaged once (row lock and version check: a second triager
gets a Conflict). A started case keeps the report's ``received_at``, so a deadline counted
from the report (the child protection assessment) runs from the moment it arrived, not from
triage. Every read and decision is audited; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from engine import actions, audit
from engine.audit import Actor
from engine.catalogs import procedure_settings
from engine.db import utcnow
from engine.errors import Conflict, Forbidden, NotFound, ValidationFailed
from engine.intake import INTAKE, LOCAL_TZ, MAX_REASON, MIN_REASON, TRIAGE_PROCEDURES, intake_units
from engine.models import Case, JournalNote, Subject, Unit, User
from engine.models.intake import IntakeReport, PartnerOrganisation
from engine.roles import CASEWORKER

#: Name and birth-date matching decrypts candidates; bound the work per search.
MAX_SCAN = 5000
#: A child report's protection assessment is due within a day of receipt (domain.md §4.4; the
#: child safeguarding model's PT24H deadline counted from the case's ``received_at``).
CHILD_ASSESSMENT_WITHIN = timedelta(hours=24)


@dataclass(frozen=True)
class ReportRow:
    """A report in the triage queue (no content: the list shows no personal data)."""

    id: int
    receipt: str
    kind: str
    channel: str
    received_at: datetime
    partner: str | None
    feedback_requested: bool
    status: str
    #: a child report: when the protection assessment is due (counted from receipt)
    assessment_due_at: datetime | None = None

    @property
    def overdue(self) -> bool:
        """A child report still waiting after its protection assessment was due."""
        return self.assessment_due_at is not None and self.assessment_due_at < utcnow()


@dataclass(frozen=True)
class ReportView:
    """One report as intake staff read it."""

    id: int
    receipt: str
    kind: str
    channel: str
    unit_id: int
    unit_name: str
    received_at: datetime
    partner: str | None
    partner_kind: str | None
    content: Mapping[str, Any]
    status: str
    version: int
    triaged_at: datetime | None
    triaged_by: str | None
    case_id: int | None
    case_number: str | None
    outcome_reason: str | None


@dataclass(frozen=True)
class CaseMatch:
    """An earlier case that may be about the same person."""

    case_id: int
    number: str
    procedure: str
    unit_id: int
    unit_name: str
    status: str
    created_at: datetime
    match: str  # "personnummer" or "name_birth_date"


# --- reading -----------------------------------------------------------------------------------


def queue(session: Session, actor: Actor, *, status: str = "new") -> list[ReportRow]:
    """The reports of the actor's units (oldest first: the longest waiting on top). Audited."""
    units = intake_units(actor)
    if not units:
        raise Forbidden("only intake staff see the triage queue")
    rows = session.execute(
        select(IntakeReport, PartnerOrganisation.name)
        .outerjoin(PartnerOrganisation, PartnerOrganisation.id == IntakeReport.partner_id)
        .where(IntakeReport.unit_id.in_(units), IntakeReport.status == status)
        .order_by(IntakeReport.received_at, IntakeReport.id)
        .limit(500)
    ).all()
    audit.record(
        session, actor, "intake_reports:listed", details={"status": status, "count": len(rows)}
    )
    return [
        ReportRow(
            id=r.id,
            receipt=r.receipt,
            kind=r.kind,
            channel=r.channel,
            received_at=r.received_at,
            partner=name,
            feedback_requested=r.feedback_requested,
            status=r.status,
            assessment_due_at=r.received_at + CHILD_ASSESSMENT_WITHIN
            if r.kind == "child" and r.status == "new"
            else None,
        )
        for r, name in rows
    ]


def load_report(
    session: Session, actor: Actor, report_id: int, *, lock: bool = False
) -> IntakeReport:
    """The report if the actor triages its unit; otherwise NotFound, logged as denied."""
    report = None
    if 1 <= report_id <= 2**31 - 1:
        query = select(IntakeReport).where(IntakeReport.id == report_id)
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        report = session.execute(query).scalar_one_or_none()
    if report is None or report.unit_id not in intake_units(actor):
        audit.record(
            session,
            actor,
            "intake_report:denied",
            object_type="intake_report",
            object_id=str(report_id),
            outcome="denied",
        )
        raise NotFound("report not found", denied_kind="intake_report", denied_id=str(report_id))
    return report


def view_report(session: Session, actor: Actor, report_id: int) -> ReportView:
    """A report with its content, for the unit's intake staff. The read is audited."""
    report = load_report(session, actor, report_id)
    audit.record(
        session,
        actor,
        "intake_report:viewed",
        object_type="intake_report",
        object_id=report.id,
        case_id=report.case_id,
        purpose="triage",
    )
    return _view(session, report)


def _view(session: Session, report: IntakeReport) -> ReportView:
    unit = session.get(Unit, report.unit_id)
    partner = session.get(PartnerOrganisation, report.partner_id) if report.partner_id else None
    triager = session.get(User, report.triaged_by_id) if report.triaged_by_id else None
    case = session.get(Case, report.case_id) if report.case_id else None
    return ReportView(
        id=report.id,
        receipt=report.receipt,
        kind=report.kind,
        channel=report.channel,
        unit_id=report.unit_id,
        unit_name=unit.name if unit else "",
        received_at=report.received_at,
        partner=partner.name if partner else None,
        partner_kind=partner.kind if partner else None,
        content=dict(report.content or {}),
        status=report.status,
        version=report.version,
        triaged_at=report.triaged_at,
        triaged_by=triager.display_name if triager else None,
        case_id=report.case_id,
        case_number=case.number if case else None,
        outcome_reason=report.outcome_reason,
    )


def find_earlier_cases(session: Session, actor: Actor, report_id: int) -> list[CaseMatch]:
    """Cases that may be about the report's person: the same personnummer (blind index), or
    the same name and birth date. Only case numbers are shown, never their content. Audited."""
    report = load_report(session, actor, report_id)
    content = report.content or {}
    found: dict[int, str] = {}
    if report.personnummer_index:
        ids = session.execute(
            select(Subject.case_id).where(Subject.personnummer_index == report.personnummer_index)
        ).scalars()
        found.update({int(i): "personnummer" for i in ids})
    name = _norm(content.get("subject_name"))
    birth = content.get("subject_birth_date") or _birth_from_pnr(
        content.get("subject_personnummer")
    )
    if name and birth:
        candidates = session.execute(
            select(Subject).where(Subject.birth_date.is_not(None)).limit(MAX_SCAN)
        ).scalars()
        for subject in candidates:
            if subject.case_id in found:
                continue
            if subject.birth_date == birth and _norm(subject.name) == name:
                found[subject.case_id] = "name_birth_date"
    matches = []
    units = {u.id: u.name for u in session.execute(select(Unit)).scalars()}
    for case in session.execute(select(Case).where(Case.id.in_(found)).order_by(Case.id)).scalars():
        matches.append(
            CaseMatch(
                case_id=case.id,
                number=case.number,
                procedure=case.procedure,
                unit_id=case.unit_id,
                unit_name=units.get(case.unit_id, ""),
                status=case.status,
                created_at=case.created_at,
                match=found[case.id],
            )
        )
    audit.record(
        session,
        actor,
        "intake_report:matched",
        object_type="intake_report",
        object_id=report.id,
        purpose="duplicate check",
        details={"matches": [m.case_id for m in matches]},
    )
    return matches


def _norm(value: Any) -> str:
    return " ".join(str(value).casefold().split()) if value else ""


def _birth_from_pnr(pnr: Any) -> str | None:
    if not isinstance(pnr, str) or len(pnr) != 12:
        return None
    day = int(pnr[6:8])
    day = day - 60 if day > 60 else day
    return f"{pnr[0:4]}-{pnr[4:6]}-{day:02d}"


# --- triage: deciding ----------------------------------------------------------------------------


def _claim(
    session: Session, actor: Actor, report_id: int, expected_version: int | None
) -> IntakeReport:
    """Lock the report for triage; a report already triaged (or changed) is a Conflict."""
    report = load_report(session, actor, report_id, lock=True)
    if report.status != "new" or (
        expected_version is not None and expected_version != report.version
    ):
        triager = session.get(User, report.triaged_by_id) if report.triaged_by_id else None
        raise Conflict(
            "This report has already been triaged.",
            completed_by=triager.display_name if triager else None,
            completed_at=report.triaged_at.isoformat(timespec="minutes")
            if report.triaged_at
            else None,
        )
    return report


def _done(
    session: Session,
    actor: Actor,
    report: IntakeReport,
    status: str,
    case_id: int | None,
    reason: str | None = None,
) -> None:
    report.status = status
    report.triaged_at = utcnow()
    report.triaged_by_id = actor.user_id
    report.case_id = case_id
    report.outcome_reason = reason
    try:
        session.flush()
    except StaleDataError as exc:
        raise Conflict("This report has already been triaged.") from exc
    audit.record(
        session,
        actor,
        f"intake_report:{status}",
        object_type="intake_report",
        object_id=report.id,
        case_id=case_id,
        purpose="triage",
        details={"kind": report.kind, "unit_id": report.unit_id},
    )


def close_without_action(
    session: Session,
    actor: Actor,
    report_id: int,
    *,
    reason: str,
    expected_version: int | None = None,
) -> IntakeReport:
    """Triage: no action, with the reason on record."""
    report = _claim(session, actor, report_id, expected_version)
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON or len(reason) > MAX_REASON:
        raise ValidationFailed(
            {"reason": [f"Write a reason of {MIN_REASON}-{MAX_REASON} characters."]}
        )
    _done(session, actor, report, "no_action", None, reason)
    return report


def link_to_case(
    session: Session,
    actor: Actor,
    report_id: int,
    *,
    case_id: int,
    expected_version: int | None = None,
) -> IntakeReport:
    """Triage: the report is about a person with an earlier case; add it there, no new case.

    Only a case of the report's own unit that the duplicate check found can be chosen (a
    case of another unit is shown, so intake can contact that unit, but not written to). The
    report lands in that case's journal (encrypted, like every journal note), so its
    caseworkers see it.
    """
    matches = {m.case_id: m for m in find_earlier_cases(session, actor, report_id)}
    match = matches.get(case_id)
    report_unit = session.execute(
        select(IntakeReport.unit_id).where(IntakeReport.id == report_id)
    ).scalar_one()
    if match is None or match.unit_id != report_unit:
        raise ValidationFailed(
            {"case_id": ["Choose one of the cases of this unit found for this person."]}
        )
    report = _claim(session, actor, report_id, expected_version)
    session.add(
        JournalNote(
            case_id=case_id,
            author_id=actor.user_id,
            title=f"Ny anmälan kopplad till ärendet (kvitto {report.receipt})"[:300],
            text=summary_text(report),
            kind="intake",
            event_date=utcnow().date(),
        )
    )
    _done(session, actor, report, "linked", case_id)
    return report


def summary_text(report: IntakeReport) -> str:
    """The report as plain text for a journal note (labels in Swedish, the record's language)."""
    c = report.content or {}
    received = report.received_at.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M")
    lines = [
        f"Inkommen: {received}",
        f"Kanal: {report.channel}" + (f" ({c['partner_name']})" if c.get("partner_name") else ""),
        f"Oro: {c.get('concern') or ''}",
    ]
    for key, label in (
        ("subject_name", "Namn"),
        ("subject_birth_date", "Födelsedatum"),
        ("subject_age", "Ålder"),
        ("subject_description", "Beskrivning"),
        ("place", "Plats"),
        ("observed", "När"),
    ):
        if c.get(key) not in (None, ""):
            lines.append(f"{label}: {c[key]}")
    if c.get("anonymous"):
        lines.append("Anmälaren är anonym.")
    else:
        for key, label in (
            ("reporter_name", "Anmälare"),
            ("reporter_role", "Roll"),
            ("reporter_organisation", "Organisation"),
            ("reporter_contact", "Kontakt"),
        ):
            if c.get(key):
                lines.append(f"{label}: {c[key]}")
        if c.get("reporter_mandatory"):
            lines.append("Anmälaren har anmälningsskyldighet.")
        if c.get("feedback_requested"):
            lines.append("Anmälaren begär återkoppling.")
    return "\n".join(lines)


def procedures_for_unit(session: Session, unit_id: int) -> list[str]:
    """Triage procedures owned by the unit (bpmn/procedures.toml)."""
    unit = session.get(Unit, unit_id)
    settings = procedure_settings()
    return [
        p
        for p in TRIAGE_PROCEDURES
        if unit is not None and settings.get(p) is not None and settings[p].unit_key == unit.key
    ]


def start_from_report(
    session: Session,
    actor: Actor,
    report_id: int,
    *,
    procedure: str,
    intake: Mapping[str, Any],
    subject_fields: Mapping[str, str],
    expected_version: int | None = None,
) -> Case:
    """Triage: start ``procedure`` with the (reviewed) intake data, received when the report was.

    The case keeps the report's ``received_at``, so a deadline counted from the report
    (the child protection assessment) runs from the moment it arrived.
    """
    report = _claim(session, actor, report_id, expected_version)
    if procedure not in procedures_for_unit(session, report.unit_id):
        raise ValidationFailed({"procedure": ["This procedure cannot be started from here."]})
    case = actions.start_case(
        session,
        actor,
        procedure=procedure,
        unit_id=report.unit_id,
        intake=intake,
        subject_fields=subject_fields,
        received_at=report.received_at,
        allowed_roles=frozenset({CASEWORKER, INTAKE}),
    )
    session.add(
        JournalNote(
            case_id=case.id,
            author_id=actor.user_id,
            title=f"Anmälan (kvitto {report.receipt})"[:300],
            text=summary_text(report),
            kind="intake",
            event_date=utcnow().date(),
        )
    )
    _done(session, actor, report, "started", case.id)
    return case
