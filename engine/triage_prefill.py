"""Start-form values for a procedure taken from an outside report, so triage starts the
case without retyping (the intake worker checks and completes them on the start form)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from engine.audit import Actor
from engine.intake import LOCAL_TZ
from engine.models.intake import IntakeReport
from engine.processes import declared_keys, latest_published, model_for
from engine.triage import load_report

#: reporter role or partner kind -> the start forms' source values
_CHILD_SOURCE = {
    "school_preschool": "school_preschool",
    "school": "school_preschool",
    "health_care": "health_care",
    "police": "police",
    "social_services": "social_services",
    "ngo": "ngo",
    "relative": "relative",
    "private_person": "public",
    "housing_company": "other_agency",
    "other": "public",
}
_ADULT_SOURCE = {
    "police": "police",
    "ngo": "ngo",
    "health_care": "health",
    "school_preschool": "school",
    "school": "school",
    "housing_company": "huge",
    "social_services": "other_agency",
    "relative": "public",
    "private_person": "public",
    "other": "public",
}
_HOUSING_SOURCE = {"police": "police", "housing_company": "huge_staff"}
_CHILD_REPORTER_ROLE = {
    "private_person": "private_person",
    "relative": "relative",
    "school_preschool": "school_preschool",
    "health_care": "health_care",
    "police": "police",
    "social_services": "social_services",
    "ngo": "ngo",
}


def prefill(session: Session, report_id: int, actor: Actor, procedure: str) -> dict[str, Any]:
    """Start-form values for ``procedure`` taken from the report (declared keys only)."""
    report = load_report(session, actor, report_id)
    version = latest_published(session, procedure)
    spec = version.forms.get(model_for(version).start_form_key or "", {})
    values = _prefill_values(report, procedure)
    keys = set(declared_keys(spec))
    return {k: v for k, v in values.items() if k in keys and v not in (None, "")}


def _prefill_values(report: IntakeReport, procedure: str) -> dict[str, Any]:
    c = report.content or {}
    source = c.get("partner_kind") or c.get("reporter_role") or "other"
    received = report.received_at.astimezone(LOCAL_TZ).strftime("%Y-%m-%dT%H:%M")
    where = "\n".join(str(c[k]) for k in ("subject_description", "place", "observed") if c.get(k))
    org = c.get("partner_name") or c.get("reporter_organisation")
    if procedure == "child_safeguarding":
        return {
            "report_received_at": received,
            "report_source": "anonymous"
            if c.get("anonymous")
            else _CHILD_SOURCE.get(source, "public"),
            "report_channel": "digital_form",
            "concern_description": c.get("concern"),
            "reporter_anonymous": bool(c.get("anonymous")),
            "reporter_name": c.get("reporter_name"),
            "reporter_role": "unknown"
            if c.get("anonymous")
            else _CHILD_REPORTER_ROLE.get(source, "other"),
            "reporter_organisation": org,
            "reporter_contact": c.get("reporter_contact"),
            "reporter_mandatory": bool(c.get("reporter_mandatory")),
            "feedback_requested": bool(c.get("feedback_requested")),
            "child_identity_status": "stated_unverified" if c.get("subject_name") else "unknown",
            "child_name": c.get("subject_name"),
            "child_personnummer": c.get("subject_personnummer"),
            "child_birth_date": c.get("subject_birth_date"),
            "child_estimated_age": c.get("subject_age"),
            "child_whereabouts": where or None,
            "place_found_details": (c.get("place") or "")[:300] or None,
        }
    note = f"Anmälan (kvitto {report.receipt}): {c.get('concern') or ''}"[:10000]
    if procedure == "identification":
        return {
            "contact_datetime": received,
            "referral_source": _ADULT_SOURCE.get(source, "public"),
            "referral_source_details": org,
            "contact_channel": "digital_form",
            "identity_status": "known" if c.get("subject_name") else "unknown",
            "subject_name": c.get("subject_name"),
            "personnummer": c.get("subject_personnummer"),
            "birth_date": c.get("subject_birth_date"),
            "estimated_age": c.get("subject_age"),
            "contact_place_details": (c.get("place") or "")[:300] or None,
            "journal_note": note,
        }
    if procedure == "housing_notification":
        return {
            "source": _HOUSING_SOURCE.get(source),
            "address": (c.get("place") or "")[:200] or None,
            "journal_note": note,
        }
    return {}
