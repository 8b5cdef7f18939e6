"""The document kinds of domain.md §10 and what each may draw from a case record.

Why a separate module: each builder below is the whole disclosure of one kind. It picks
named facts from the case (workflow data, decisions, consents) and raises
:class:`Unavailable` with a reason code when the document may not exist now (a guardian
suspected of involvement, a disclosure gate that no longer passes, no feedback asked).
``engine.documents`` turns the facts into letter data and files the result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import access, actions
from engine.catalogs import decision_types
from engine.errors import Forbidden, NotFound, ValidationFailed
from engine.models import (
    Case,
    Decision,
    OpenTask,
    ProcessInstance,
    ProcessVersion,
    Unit,
    User,
)
from engine.processes import model_for, option_label

LOCAL_TZ = ZoneInfo("Europe/Stockholm")
PROTECTED_LABEL = "Skyddad identitet"


class Unavailable(Forbidden):
    """The document cannot be produced for this case now; ``code`` says why."""

    def __init__(self, code: str) -> None:
        super().__init__(f"the document cannot be produced: {code}")
        self.code = code


@dataclass(frozen=True)
class LegalLine:
    """A legal reference as it applies on the document's date."""

    key: str
    label: str
    citation: str


@dataclass(frozen=True)
class LetterData:
    """Everything one document may print. ``facts`` is the whole disclosure: templates
    read named facts from it and nothing else."""

    kind: str
    title: str
    case_number: str
    unit_name: str
    issued_on: date
    recipient: str
    subject_label: str
    protected: bool
    contact_person: str
    legal_refs: tuple[LegalLine, ...]
    facts: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    needs_approval: bool = False


@dataclass(frozen=True)
class KindInfo:
    """One document kind: for which procedures, to whom, and whether it leaves the unit."""

    kind: str
    procedures: frozenset[str]
    title_sv: str
    title_en: str
    recipient: str
    outgoing: bool
    legal_keys: tuple[str, ...]

    def title(self, lang: str) -> str:
        """The kind's name in ``lang``."""
        return self.title_en if lang == "en" else self.title_sv


@dataclass(frozen=True)
class KindState:
    """Whether a kind can be produced for a case now (``reason`` is a code when not)."""

    info: KindInfo
    available: bool
    reason: str = ""


@dataclass
class CaseRecord:
    """The parts of a case a document may draw on (read once per request)."""

    case: Case
    version: ProcessVersion
    data: dict[str, Any]
    decisions: list[Decision]
    done: dict[str, OpenTask]
    protected: bool
    unit_name: str
    forms: Mapping[str, Any]

    def label(self, key: str, lang: str = "sv") -> str:
        """A value in words (option labels from the form that declares ``key``)."""
        value = self.data.get(key)
        if value in (None, "", []):
            return ""
        if isinstance(value, bool):
            return "Ja" if value else "Nej"
        values = value if isinstance(value, list) else [value]
        words = []
        for item in values:
            text = str(item)
            for spec in self.forms.values():
                found = option_label(spec, key, text, lang)
                if found != text:
                    text = found
                    break
            words.append(text)
        return ", ".join(words)

    def text(self, key: str) -> str:
        value = self.data.get(key)
        return "" if value in (None, [], False) else str(value)

    def decision(self, dtype: str, *, approved: bool = True) -> Decision | None:
        rows = [d for d in self.decisions if d.decision_type == dtype]
        if approved:
            rows = [d for d in rows if d.status == "approved"]
        return rows[-1] if rows else None


KINDS: Mapping[str, KindInfo] = MappingProxyType(
    {
        k.kind: k
        for k in (
            KindInfo(
                "protection_assessment",
                frozenset({"child_safeguarding"}),
                "Skyddsbedömning",
                "Protection assessment",
                "Akten (intern)",
                False,
                ("CHILD_IMMEDIATE_PROTECTION_ASSESSMENT", "BEST_INTERESTS_OF_CHILD"),
            ),
            KindInfo(
                "lvu6_decision",
                frozenset({"child_safeguarding"}),
                "Beslut om omedelbart omhändertagande och underställning",
                "Immediate care order (LVU 6 §) and court referral",
                "Förvaltningsrätten",
                True,
                ("LVU_IMMEDIATE_CARE", "LVU_GROUNDS"),
            ),
            KindInfo(
                "lvu_care_application",
                frozenset({"child_safeguarding"}),
                "Ansökan om vård enligt LVU",
                "Application for care under LVU",
                "Förvaltningsrätten",
                True,
                ("LVU_GROUNDS", "LVU_IMMEDIATE_CARE"),
            ),
            KindInfo(
                "guardian_notice",
                frozenset({"child_safeguarding"}),
                "Underrättelse om inledd utredning",
                "Notice that an investigation has started",
                "Vårdnadshavare",
                True,
                ("INVESTIGATION",),
            ),
            KindInfo(
                "police_report",
                frozenset({"identification", "child_safeguarding"}),
                "Polisanmälan",
                "Police report",
                "Polismyndigheten",
                True,
                (),
            ),
            KindInfo(
                "housing_notice",
                frozenset({"housing_notification"}),
                "Underrättelse till hyresvärd",
                "Notification to the housing company",
                "Huge Fastigheter AB",
                True,
                ("PIMPING", "LEASE_FORFEITURE"),
            ),
            KindInfo(
                "referral",
                frozenset({"identification", "victim_support"}),
                "Remiss",
                "Referral",
                "Mottagande organisation",
                True,
                ("CONSENT_LIFTS_SECRECY",),
            ),
            KindInfo(
                "reflection_application",
                frozenset({"victim_support"}),
                "Underlag för ansökan om betänketid",
                "Reflection-period application data",
                "Migrationsverket",
                True,
                ("REFLECTION_PERIOD", "TRAFFICKING", "EXPLOITATION"),
            ),
            KindInfo(
                "reporter_feedback",
                frozenset({"child_safeguarding"}),
                "Återkoppling till anmälare",
                "Feedback to the reporter",
                "Anmälaren",
                True,
                ("FEEDBACK_TO_REPORTER",),
            ),
            KindInfo(
                "closure_note",
                frozenset(
                    {
                        "identification",
                        "child_safeguarding",
                        "housing_notification",
                        "victim_support",
                    }
                ),
                "Avslutsanteckning",
                "Closure note",
                "Akten (intern)",
                False,
                (),
            ),
        )
    }
)


# ----------------------------------------------------------------------------- the record


def load_record(session: Session, case: Case) -> CaseRecord:
    instance = session.execute(
        select(ProcessInstance)
        .where(ProcessInstance.case_id == case.id)
        .order_by(ProcessInstance.id)
        .limit(1)
    ).scalar_one_or_none()
    if instance is None:
        raise NotFound("case has no procedure")
    version = session.get(ProcessVersion, instance.version_id)
    assert version is not None
    wf = actions.runtime.restore(version.sha256, version.spec_json, instance.state)
    done: dict[str, OpenTask] = {}
    for row in session.execute(
        select(OpenTask)
        .where(OpenTask.case_id == case.id, OpenTask.status == "done")
        .order_by(OpenTask.completed_at)
    ).scalars():
        done[row.bpmn_id] = row
    decisions = list(
        session.execute(
            select(Decision).where(Decision.case_id == case.id).order_by(Decision.id)
        ).scalars()
    )
    unit = session.get(Unit, case.unit_id)
    return CaseRecord(
        case=case,
        version=version,
        data=actions.runtime.workflow_data(wf),
        decisions=decisions,
        done=done,
        protected=access.is_protected(case),
        unit_name=unit.name if unit else "",
        forms=version.forms,
    )


def _local(moment: datetime | None) -> str:
    return moment.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M") if moment else ""


def _day(value: Any) -> date | None:
    if isinstance(value, str) and value:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def user_name(session: Session, user_id: int | None) -> str:
    user = session.get(User, user_id) if user_id else None
    return user.display_name if user else ""


def subject_label(rec: CaseRecord) -> str:
    """The person's name, or the protected-identity label (never more)."""
    if rec.protected:
        return PROTECTED_LABEL
    subject = rec.case.subjects[0] if rec.case.subjects else None
    name = (subject.name or subject.alias) if subject else None
    return name or "Okänd identitet"


def _identity(rec: CaseRecord) -> dict[str, str]:
    """Identity facts for a recipient entitled to them (police, Migrationsverket)."""
    subject = rec.case.subjects[0] if rec.case.subjects else None
    if subject is None:
        return {"name": "Okänd identitet"}
    facts = {
        "name": subject_label(rec) if rec.protected else (subject.name or subject.alias or ""),
        "birth_date": subject.birth_date or "",
        "estimated_age": str(subject.estimated_age) if subject.estimated_age else "",
        "gender": subject.gender or "",
        "citizenship": subject.citizenship or "",
    }
    if rec.protected:
        facts["protected_note"] = (
            "Personen har skyddade personuppgifter. Kontakt sker via socialtjänsten."
        )
    return facts


def _decision_facts(session: Session, decision: Decision, rec: CaseRecord) -> dict[str, str]:
    dtype = decision_types().get(decision.decision_type)
    form_labels = rec.forms
    outcome = decision.outcome
    for spec in form_labels.values():
        for comp in spec.get("components", []):
            key = comp.get("key") if isinstance(comp, dict) else None
            if key and option_label(spec, key, outcome, "sv") != outcome:
                outcome = option_label(spec, key, outcome, "sv")
                break
        if outcome != decision.outcome:
            break
    return {
        "decision_type": dtype.label("sv") if dtype else decision.decision_type,
        "outcome": outcome,
        "reasons": decision.reasons,
        "proposed_by": user_name(session, decision.proposed_by_id),
        "decided_by": user_name(session, decision.decided_by_id),
        "decided_at": _local(decision.decided_at),
    }


# ------------------------------------------------------------------------- kind builders

Builder = Callable[[Session, CaseRecord], dict[str, str]]


def _protection_assessment(session: Session, rec: CaseRecord) -> dict[str, str]:
    decision = rec.decision("D-B2", approved=False)
    if decision is None or "task_assess_immediate_protection" not in rec.done:
        raise Unavailable("not_reached")
    facts = _decision_facts(session, decision, rec)
    facts["status"] = "Beslutad" if decision.status == "approved" else "Ej beslutad"
    facts["received_at"] = _local(rec.case.received_at)
    for key in (
        "protection_assessed_at",
        "assessment_next_day_reason",
        "child_seen",
        "information_sources",
        "signs_of_harm",
        "violence_suspected",
        "protective_adult_present",
        "immediate_risk",
    ):
        facts[key] = rec.label(key)
    return facts


def _lvu6_decision(session: Session, rec: CaseRecord) -> dict[str, str]:
    decision = rec.decision("D-B3")
    if decision is None or decision.outcome != "LVU6_IMMEDIATE_CARE":
        raise Unavailable("not_reached")
    facts = _decision_facts(session, decision, rec)
    decided = decision.decided_at
    facts["referral_due"] = (
        (decided + timedelta(days=7)).astimezone(LOCAL_TZ).date().isoformat() if decided else ""
    )
    for key in (
        "lvu_grounds",
        "lvu6_urgency",
        "guardians_position",
        "placement_type",
        "lvu6_executed_at",
        "court_referral_sent_on",
        "court_name",
        "court_other",
        "court_case_number",
        "documents_sent",
        "court_ruling",
        "court_ruling_date",
    ):
        facts[key] = rec.label(key)
    ruling = _day(rec.data.get("court_ruling_date"))
    if ruling and rec.data.get("court_ruling") == "UPHELD":
        facts["care_application_due"] = (ruling + timedelta(weeks=4)).isoformat()
    return facts


def _lvu_care_application(session: Session, rec: CaseRecord) -> dict[str, str]:
    decision = rec.decision("D-B9")
    if decision is None or decision.outcome != "APPLY_LVU_CARE":
        raise Unavailable("not_reached")
    facts = _decision_facts(session, decision, rec)
    for key in (
        "lvu_grounds",
        "care_application_submitted_on",
        "care_case_number",
        "court_ruling",
        "court_ruling_date",
        "lvu6_executed_at",
    ):
        facts[key] = rec.label(key)
    ruling = _day(rec.data.get("court_ruling_date"))
    if ruling and rec.data.get("court_ruling") == "UPHELD":
        facts["care_application_due"] = (ruling + timedelta(weeks=4)).isoformat()
    return facts


def _guardian_notice(session: Session, rec: CaseRecord) -> dict[str, str]:
    if rec.data.get("guardian_1_suspected") or rec.data.get("guardian_2_suspected"):
        raise Unavailable("guardian_suspected")
    if rec.data.get("withheld_reason") or "task_record_notification_withheld" in rec.done:
        raise Unavailable("notification_withheld")
    decision = rec.decision("D-B6")
    if decision is None or decision.outcome != "OPEN_INVESTIGATION":
        raise Unavailable("not_reached")
    names = [rec.text(k) for k in ("guardian_1_name", "guardian_2_name") if rec.text(k)]
    if not names:
        raise Unavailable("no_guardian")
    return {
        "recipients": ", ".join(names),
        "child": subject_label(rec),
        "opened_on": decision.decided_at.astimezone(LOCAL_TZ).date().isoformat()
        if decision.decided_at
        else "",
    }


_POLICE_GROUND_REFS = {
    "OSL_10_21": "DISCLOSURE_CRIME_AGAINST_CHILD",
    "OSL_10_24": "DISCLOSURE_SERIOUS_CRIME",
    "consent": "CONSENT_LIFTS_SECRECY",
}


def _gate(session: Session, rec: CaseRecord, bpmn_id: str) -> None:
    """The disclosure gate of the step that decided the disclosure, checked again now
    (a consent may have been withdrawn since)."""
    task = rec.done.get(bpmn_id)
    meta = model_for(rec.version).tasks.get(bpmn_id)
    if task is None or meta is None:
        raise Unavailable("not_reached")
    try:
        actions._check_disclosure(session, rec.case, task, meta, rec.data)
    except ValidationFailed as exc:
        raise Unavailable("disclosure_gate") from exc


def _police_report(session: Session, rec: CaseRecord) -> dict[str, str]:
    dtype = "D-B5" if rec.case.procedure == "child_safeguarding" else "D-A7"
    decision = rec.decision(dtype)
    if decision is None:
        raise Unavailable("not_reached")
    if decision.outcome != "REPORTED":
        raise Unavailable("not_reported")
    _gate(session, rec, "task_propose_police_report")
    facts = {**_identity(rec), **_decision_facts(session, decision, rec)}
    for key in (
        "suspected_crimes",
        "police_legal_ground",
        "police_reference",
        "barnahus_coordination",
    ):
        facts[key] = rec.label(key)
    facts["ground_ref"] = _POLICE_GROUND_REFS.get(rec.text("police_legal_ground"), "")
    return facts


#: The only keys of a housing case that may reach the housing company.
HOUSING_LETTER_KEYS = (
    "address",
    "postal_code",
    "flat_number",
    "huge_property_id",
    "letter_observed_from",
    "letter_observed_to",
    "letter_indicators",
    "contact_person_name",
    "contact_person_phone",
    "acknowledgement_requested_by",
)


def _housing_notice(session: Session, rec: CaseRecord) -> dict[str, str]:
    decision = rec.decision("D-C3")
    if decision is None or decision.outcome not in (
        "POLICE_AND_PROPERTY_LETTER",
        "CONSENT_BASED_DISCLOSURE",
    ):
        raise Unavailable("not_reached" if decision is None else "route_without_letter")
    if "task_draft_housing_letter" not in rec.done:
        raise Unavailable("not_reached")
    if "task_sign_housing_letter" in rec.done:
        _gate(session, rec, "task_sign_housing_letter")
    return {key: rec.label(key) for key in HOUSING_LETTER_KEYS}


def _referral(session: Session, rec: CaseRecord) -> dict[str, str]:
    if rec.case.procedure == "victim_support":
        _gate(session, rec, "task_refer_nsp")
        facts = {**_identity(rec)}
        facts["target"] = rec.text("nsp_organisation") or "NSP"
        facts["nsp_period"] = rec.label("nsp_period")
        facts["with_identity"] = "yes"
        return facts
    decision = rec.decision("D-A8")
    if decision is None or not decision.outcome.startswith("REFER_"):
        raise Unavailable("not_reached")
    consented = "CONSENT_SHARE_ORG" in actions.active_consents(session, rec.case.id)
    if not consented and rec.data.get("referral_basis") != "without_personal_data":
        raise Unavailable("no_consent")
    facts = _decision_facts(session, decision, rec)
    facts["target"] = rec.text("referral_target") or facts["outcome"]
    facts["with_identity"] = "yes" if consented else ""
    if consented:
        facts.update(_identity(rec))
    else:
        facts["reasons"] = ""
    return facts


def _reflection_application(session: Session, rec: CaseRecord) -> dict[str, str]:
    decision = rec.decision("D-D5")
    if decision is None or decision.outcome != "APPLY":
        raise Unavailable("not_reached")
    facts = {**_identity(rec), **_decision_facts(session, decision, rec)}
    for key in ("languages", "interpreter_language", "exploitation_forms", "residence_status"):
        facts[key] = rec.label(key)
    return facts


_FEEDBACK_FROM_B6 = {
    "OPEN_INVESTIGATION": "investigation_opened",
    "DO_NOT_OPEN": "investigation_not_opened",
}


def _reporter_feedback(session: Session, rec: CaseRecord) -> dict[str, str]:
    if not rec.data.get("feedback_requested") or rec.data.get("reporter_anonymous"):
        raise Unavailable("no_feedback_requested")
    status = rec.text("feedback_content")
    if not status:
        decision = rec.decision("D-B6")
        if decision is None:
            raise Unavailable("not_reached")
        status = _FEEDBACK_FROM_B6.get(decision.outcome, "investigation_ongoing")
    return {
        "recipient": ", ".join(
            v for v in (rec.text("reporter_name"), rec.text("reporter_organisation")) if v
        ),
        "report_received_on": rec.case.received_at.astimezone(LOCAL_TZ).date().isoformat(),
        "status": status,
    }


def _closure_note(session: Session, rec: CaseRecord) -> dict[str, str]:
    procedure = rec.case.procedure
    facts: dict[str, str] = {}
    if procedure == "victim_support":
        decision = rec.decision("D-D11")
        if decision is None:
            raise Unavailable("not_reached")
        facts.update(_decision_facts(session, decision, rec))
        for key in ("closure_reason", "follow_up_offered", "transfer_municipality"):
            facts[key] = rec.label(key)
    elif procedure == "housing_notification":
        if "task_close_housing_notification" not in rec.done:
            raise Unavailable("not_reached")
        facts["closure_reason"] = rec.label("closure_reason")
        facts["summary"] = rec.text("closure_summary")
    elif procedure == "identification":
        if "task_close_identification" not in rec.done:
            raise Unavailable("not_reached")
        facts["closure_reason"] = rec.label("case_status")
        facts["summary"] = rec.text("journal_summary")
    else:
        decision = rec.decision("D-B9")
        closing = decision is not None and decision.outcome.startswith("CLOSE_")
        if not closing and rec.data.get("case_status") not in ("Closed", "ClosedReferred"):
            raise Unavailable("not_reached")
        if decision is not None:
            facts.update(_decision_facts(session, decision, rec))
        facts["closure_reason"] = facts.get("outcome") or rec.label("case_status")
    facts["subject"] = "" if procedure == "housing_notification" else subject_label(rec)
    return facts


BUILDERS: Mapping[str, Builder] = MappingProxyType(
    {
        "protection_assessment": _protection_assessment,
        "lvu6_decision": _lvu6_decision,
        "lvu_care_application": _lvu_care_application,
        "guardian_notice": _guardian_notice,
        "police_report": _police_report,
        "housing_notice": _housing_notice,
        "referral": _referral,
        "reflection_application": _reflection_application,
        "reporter_feedback": _reporter_feedback,
        "closure_note": _closure_note,
    }
)

#: Facts that would place a person (addresses, whereabouts, contact paths): never printed
#: for a case with a protected identity.
LOCATION_FACTS = frozenset({"placement_provider", "child_whereabouts", "guardian_1_contact"})
