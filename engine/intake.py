"""Reports from outside (public e-service, partners): receive, route, store and throttle.

A report is stored encrypted and routed by its kind: a child report to the unit that owns
child safeguarding, an adult report to the unit that owns identification (bpmn/procedures.toml).
There it waits for the unit's intake staff (role ``intake``): see ``engine.triage``. Public
submissions are counted per address in the database, so every web worker agrees. Every step
is audited; nothing here commits.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine import audit, crypto
from engine.audit import Actor
from engine.catalogs import procedure_settings
from engine.db import utcnow
from engine.errors import NotFound, ValidationFailed
from engine.models import Unit
from engine.models.intake import IntakeReport, IntakeThrottle, PartnerOrganisation

PARTNER = "partner"
#: The role of a unit's intake staff (mottagning): sees and triages the unit's reports.
INTAKE = "intake"
KINDS = ("child", "adult")
#: The procedure whose unit receives each kind of report.
KIND_PROCEDURE = {"child": "child_safeguarding", "adult": "identification"}
#: The procedures triage may start (each only from a report of its own unit).
TRIAGE_PROCEDURES = ("identification", "child_safeguarding", "housing_notification")
PARTNER_KINDS = ("police", "ngo", "school", "health_care", "housing_company")
REPORTER_ROLES = (
    "private_person",
    "relative",
    "school_preschool",
    "health_care",
    "police",
    "social_services",
    "ngo",
    "housing_company",
    "other",
)
#: Per-field limits (characters); the total size is limited by the web layer.
LIMITS = {
    "subject_name": 200,
    "subject_description": 2000,
    "concern": 5000,
    "place": 300,
    "observed": 200,
    "reporter_name": 200,
    "reporter_contact": 300,
    "reporter_organisation": 300,
}
TEXT_KEYS = tuple(LIMITS)
FLAG_KEYS = ("anonymous", "reporter_mandatory", "feedback_requested")
#: reporter fields dropped when the sender stays anonymous
REPORTER_KEYS = ("reporter_name", "reporter_contact", "reporter_organisation")
MIN_REASON = 10
MAX_REASON = 2000
#: Receipt numbers: 16 characters of a 32-letter alphabet without look-alikes (80 bits).
RECEIPT_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
LOCAL_TZ = ZoneInfo("Europe/Stockholm")


@dataclass(frozen=True)
class RatePolicy:
    """At most ``limit`` public reports per address in ``window``."""

    limit: int = 5
    window: timedelta = timedelta(hours=1)


# --- receiving -----------------------------------------------------------------------------------


def new_receipt() -> str:
    """A receipt number like ``7KQM-2XPA-HW9D-R3TB``: random, unrelated to any id."""
    raw = "".join(secrets.choice(RECEIPT_ALPHABET) for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def unit_for_kind(session: Session, kind: str) -> int:
    """The unit a report of ``kind`` is routed to (the owner of its procedure)."""
    settings = procedure_settings().get(KIND_PROCEDURE[kind])
    key = settings.unit_key if settings else None
    unit_id = session.execute(select(Unit.id).where(Unit.key == key)).scalar() if key else None
    if unit_id is None:
        raise NotFound("no unit receives this kind of report")
    return int(unit_id)


def check_content(content: Mapping[str, Any]) -> dict[str, Any]:
    """The stored shape of a report: known keys only, bounded text, flags as booleans.

    The web layer validates what a person typed (and normalises the personnummer); this is
    the engine's own guard, so nothing unbounded or undeclared is ever stored.
    """
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    for key, limit in LIMITS.items():
        value = content.get(key)
        if value is None or value == "":
            clean[key] = None
        elif not isinstance(value, str):
            errors[key] = ["Expected text."]
        elif len(value) > limit:
            errors[key] = [f"At most {limit} characters."]
        else:
            clean[key] = value.strip() or None
    for key in FLAG_KEYS:
        clean[key] = content.get(key) is True
    pnr = content.get("subject_personnummer")
    if pnr not in (None, "") and not (isinstance(pnr, str) and pnr.isdigit() and len(pnr) == 12):
        errors["subject_personnummer"] = ["Expected 12 digits."]
    clean["subject_personnummer"] = pnr or None
    birth = content.get("subject_birth_date")
    if birth not in (None, "") and not (isinstance(birth, str) and len(birth) == 10):
        errors["subject_birth_date"] = ["Expected YYYY-MM-DD."]
    clean["subject_birth_date"] = birth or None
    age = content.get("subject_age")
    if age is not None and (
        isinstance(age, bool) or not isinstance(age, int) or not 0 <= age <= 120
    ):
        errors["subject_age"] = ["Expected a whole number 0-120."]
    clean["subject_age"] = age
    role = content.get("reporter_role")
    if role not in (None, "") and role not in REPORTER_ROLES:
        errors["reporter_role"] = ["Unknown role."]
    clean["reporter_role"] = role or None
    if not clean.get("concern"):
        errors.setdefault("concern", ["Describe the concern."])
    if clean["anonymous"]:
        for key in REPORTER_KEYS:
            clean[key] = None
        clean["feedback_requested"] = False
    elif clean["feedback_requested"] and not clean["reporter_contact"]:
        errors["reporter_contact"] = ["Feedback needs contact details."]
    if errors:
        raise ValidationFailed(errors)
    return clean


def receive_report(
    session: Session,
    actor: Actor,
    *,
    kind: str,
    content: Mapping[str, Any],
    channel: str,
    partner: PartnerOrganisation | None = None,
    submitted_by: int | None = None,
) -> IntakeReport:
    """Store a report in its unit's triage queue; return it (its receipt goes to the sender)."""
    if kind not in KINDS:
        raise ValidationFailed({"kind": ["Choose child or adult."]})
    clean = check_content(content)
    if partner is not None:
        clean["partner_name"] = partner.name
        clean["partner_kind"] = partner.kind
    pnr = clean.get("subject_personnummer")
    report = IntakeReport(
        receipt=new_receipt(),
        kind=kind,
        channel=channel,
        unit_id=unit_for_kind(session, kind),
        received_at=utcnow(),
        partner_id=partner.id if partner else None,
        submitted_by_id=submitted_by,
        content=clean,
        personnummer_index=crypto.blind_index(pnr, purpose="personnummer") if pnr else None,
        feedback_requested=bool(clean["feedback_requested"]),
    )
    session.add(report)
    session.flush()
    audit.record(
        session,
        actor,
        "intake_report:received",
        object_type="intake_report",
        object_id=report.id,
        purpose="intake",
        details={
            "kind": kind,
            "channel": channel,
            "unit_id": report.unit_id,
            "partner_id": report.partner_id,
            "anonymous": bool(clean["anonymous"]),
        },
    )
    return report


def record_honeypot(session: Session, actor: Actor, *, channel: str) -> str:
    """A filled honeypot: nothing is stored, the refusal is audited, a fake receipt returned."""
    audit.record(
        session,
        actor,
        "intake_report:honeypot",
        outcome="refused",
        purpose="intake",
        details={"channel": channel},
    )
    return new_receipt()


# --- throttling ----------------------------------------------------------------------------------


def _address_hash(address: str) -> str:
    return hashlib.sha256(f"intake-address:{address}".encode("utf-8", "replace")).hexdigest()


def throttle_retry_after(
    session: Session, address: str | None, now: datetime, policy: RatePolicy
) -> int | None:
    """Seconds until this address may send again, or None when it may send now."""
    if not address:
        return None
    row = session.execute(
        select(IntakeThrottle).where(IntakeThrottle.key_hash == _address_hash(address))
    ).scalar_one_or_none()
    if row is None or now - row.window_started_at >= policy.window or row.count < policy.limit:
        return None
    left = row.window_started_at + policy.window - now
    return max(1, int(left.total_seconds() + 0.999))


def count_submission(
    session: Session, address: str | None, now: datetime, policy: RatePolicy
) -> None:
    """Count one submission from ``address`` (locked row: several workers agree)."""
    if not address:
        return
    key = _address_hash(address)
    query = select(IntakeThrottle).where(IntakeThrottle.key_hash == key).with_for_update()
    row = session.execute(query).scalar_one_or_none()
    if row is None:
        try:
            with session.begin_nested():
                row = IntakeThrottle(key_hash=key, count=0, window_started_at=now)
                session.add(row)
        except IntegrityError:  # a concurrent request created it first
            row = session.execute(query).scalar_one()
    if now - row.window_started_at >= policy.window:
        row.count, row.window_started_at = 0, now
    row.count += 1
    session.flush()


# --- who triages ----------------------------------------------------------------------------------


def intake_units(actor: Actor) -> set[int]:
    """The units whose reports the actor triages."""
    return {u for u in actor.units_for(INTAKE) if u is not None}


def is_intake_staff(actor: Actor) -> bool:
    """True if the actor holds the intake role for any unit."""
    return bool(actor.units_for(INTAKE))
