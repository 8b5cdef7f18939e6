"""Partner organisations and their intake tokens: create, record, revoke, check on use.

A partner (police contact, NGO, school, health care, the housing company) sends referrals
with a service token that may call the intake endpoint and nothing else. The token is signed
by the web layer (``webapp.partner_tokens``); here is what the database knows of it: its
``jti``, its partner and expiry, and whether it was revoked. Every change is audited.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import audit
from engine.audit import Actor
from engine.errors import AuthenticationFailed, NotFound, ValidationFailed
from engine.intake import PARTNER_KINDS
from engine.models import RevokedToken, User
from engine.models.intake import PartnerMember, PartnerOrganisation, PartnerToken

MAX_NAME = 200


def get_partner(session: Session, name: str) -> PartnerOrganisation | None:
    """The partner called ``name`` (exact), or None."""
    return session.execute(
        select(PartnerOrganisation).where(PartnerOrganisation.name == name.strip())
    ).scalar_one_or_none()


def create_partner(session: Session, actor: Actor, *, name: str, kind: str) -> PartnerOrganisation:
    """Register a partner organisation (or return the existing one of that name and kind)."""
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise ValidationFailed({"name": [f"A name of 1-{MAX_NAME} characters is required."]})
    if kind not in PARTNER_KINDS:
        raise ValidationFailed({"kind": [f"One of: {', '.join(PARTNER_KINDS)}."]})
    partner = get_partner(session, name)
    if partner is not None:
        if partner.kind != kind:
            raise ValidationFailed({"kind": [f"{name} is registered as {partner.kind}."]})
        return partner
    partner = PartnerOrganisation(name=name, kind=kind, active=True)
    session.add(partner)
    session.flush()
    audit.record(
        session,
        actor,
        "partner:created",
        object_type="partner",
        object_id=partner.id,
        details={"name": name, "kind": kind},
    )
    return partner


def record_token(
    session: Session,
    actor: Actor,
    partner: PartnerOrganisation,
    *,
    jti: str,
    issued_at: datetime,
    expires_at: datetime,
) -> PartnerToken:
    """Remember an issued intake token (its id, never the token). Audited."""
    row = PartnerToken(partner_id=partner.id, jti=jti, issued_at=issued_at, expires_at=expires_at)
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "partner_token:issued",
        object_type="partner_token",
        object_id=jti,
        details={"partner_id": partner.id, "expires_at": expires_at.isoformat()},
    )
    return row


def revoke_tokens(
    session: Session,
    actor: Actor,
    now: datetime,
    *,
    jti: str | None = None,
    partner: str | None = None,
) -> int:
    """Revoke one token (``jti``) or every token of a partner; return how many. Audited."""
    query = select(PartnerToken).where(PartnerToken.revoked_at.is_(None))
    if jti is not None:
        query = query.where(PartnerToken.jti == jti.strip()[:64])
    elif partner is not None:
        found = get_partner(session, partner)
        if found is None:
            raise NotFound("no such partner")
        query = query.where(PartnerToken.partner_id == found.id)
    else:
        raise ValidationFailed({"_": ["Name a token or a partner."]})
    rows = list(session.execute(query).scalars())
    for row in rows:
        row.revoked_at = now
        audit.record(
            session,
            actor,
            "partner_token:revoked",
            object_type="partner_token",
            object_id=row.jti,
            details={"partner_id": row.partner_id},
        )
    session.flush()
    return len(rows)


def set_active(session: Session, actor: Actor, name: str, active: bool) -> PartnerOrganisation:
    """Switch a partner on or off; an inactive partner's tokens are refused. Audited."""
    partner = get_partner(session, name)
    if partner is None:
        raise NotFound("no such partner")
    partner.active = active
    audit.record(
        session,
        actor,
        "partner:enabled" if active else "partner:disabled",
        object_type="partner",
        object_id=partner.id,
    )
    session.flush()
    return partner


def partner_for_token(
    session: Session, *, jti: str, partner_id: int, now: datetime
) -> PartnerOrganisation:
    """The active partner a (signature-checked) token belongs to; AuthenticationFailed if the
    token is unknown, revoked, expired, or its partner is switched off."""
    row = session.execute(
        select(PartnerToken).where(PartnerToken.jti == jti[:64])
    ).scalar_one_or_none()
    if row is None or row.partner_id != partner_id:
        raise AuthenticationFailed("unknown token")
    if row.revoked_at is not None or row.expires_at <= now:
        raise AuthenticationFailed("revoked or expired token")
    listed = session.execute(select(RevokedToken.id).where(RevokedToken.jti == jti[:64])).first()
    if listed is not None:
        raise AuthenticationFailed("revoked token")
    partner = session.get(PartnerOrganisation, row.partner_id)
    if partner is None or not partner.active:
        raise AuthenticationFailed("inactive partner")
    return partner


def partner_of(session: Session, user_id: int | None) -> PartnerOrganisation | None:
    """The active partner organisation a user reports for, or None."""
    if user_id is None:
        return None
    return session.execute(
        select(PartnerOrganisation)
        .join(PartnerMember, PartnerMember.partner_id == PartnerOrganisation.id)
        .where(PartnerMember.user_id == user_id, PartnerOrganisation.active.is_(True))
        .order_by(PartnerOrganisation.id)
        .limit(1)
    ).scalar_one_or_none()


def add_member(session: Session, actor: Actor, partner: PartnerOrganisation, user: User) -> None:
    """Let ``user`` send referrals for ``partner`` (once). Audited."""
    exists = session.execute(
        select(PartnerMember.id).where(
            PartnerMember.partner_id == partner.id, PartnerMember.user_id == user.id
        )
    ).first()
    if exists is not None:
        return
    session.add(PartnerMember(partner_id=partner.id, user_id=user.id))
    audit.record(
        session,
        actor,
        "partner:member_added",
        object_type="partner",
        object_id=partner.id,
        details={"user_id": user.id},
    )
    session.flush()


#: Demo mode: partner organisations and the demo users who report for them.
DEMO_PARTNERS = (("Polisen, lokalpolisområde Huddinge", "police", ("polis",)),)


def load_demo_partners(session: Session) -> None:
    """Create the demo partners and memberships that do not exist yet (idempotent; demo data,
    like the demo users, is not audited)."""
    for name, kind, usernames in DEMO_PARTNERS:
        partner = get_partner(session, name)
        if partner is None:
            partner = PartnerOrganisation(name=name, kind=kind, active=True)
            session.add(partner)
            session.flush()
        for username in usernames:
            user = session.execute(
                select(User).where(User.username == username)
            ).scalar_one_or_none()
            if user is None:
                continue
            exists = session.execute(
                select(PartnerMember.id).where(
                    PartnerMember.partner_id == partner.id, PartnerMember.user_id == user.id
                )
            ).first()
            if exists is None:
                session.add(PartnerMember(partner_id=partner.id, user_id=user.id))
    session.flush()


def describe_partners(session: Session, now: datetime) -> list[str]:
    """One line per partner: name, kind, active, and its usable tokens (jti and expiry)."""
    lines = []
    for partner in session.execute(
        select(PartnerOrganisation).order_by(PartnerOrganisation.name)
    ).scalars():
        usable = session.execute(
            select(PartnerToken)
            .where(
                PartnerToken.partner_id == partner.id,
                PartnerToken.revoked_at.is_(None),
                PartnerToken.expires_at > now,
            )
            .order_by(PartnerToken.expires_at)
        ).scalars()
        tokens = ", ".join(f"{t.jti} (expires {t.expires_at:%Y-%m-%d})" for t in usable)
        state = "active" if partner.active else "inactive"
        lines.append(f"{partner.name}\t{partner.kind}\t{state}\t{tokens or '-'}")
    return lines
