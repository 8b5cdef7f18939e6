"""Intake tokens for partner organisations: signed like API tokens, scoped to ``intake``.

They are checked by :func:`webapp.tokens.verify_token` (one algorithm; ``exp``, ``iat``,
``iss``, ``aud``, ``sub``, ``jti`` required) and then against the database
(``engine.partners.partner_for_token``: known, not revoked, partner active). Their life is
longer than a person's API token (a partner system cannot log in again every few hours),
so they are issued here with their own ceiling; the scope keeps them away from every other
endpoint (``webapp.blueprints.api`` accepts only scope ``api``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.config import Settings
from engine.db import utcnow
from engine.errors import AuthenticationFailed
from webapp.tokens import sign, verify_token

SCOPE = "intake"
SUBJECT_PREFIX = "partner:"
DEFAULT_TTL_DAYS = 90
MAX_TTL_DAYS = 365


@dataclass(frozen=True)
class IssuedToken:
    """A new token and what the database keeps of it."""

    token: str
    jti: str
    issued_at: datetime
    expires_at: datetime


def issue_intake_token(
    settings: Settings, partner_id: int, ttl_days: int = DEFAULT_TTL_DAYS
) -> IssuedToken:
    """Sign a token for partner ``partner_id`` that only the intake endpoint accepts."""
    if not 1 <= ttl_days <= MAX_TTL_DAYS:
        raise ValueError(f"the lifetime must be 1-{MAX_TTL_DAYS} days")
    now = utcnow().replace(microsecond=0)
    expires = now + timedelta(days=ttl_days)
    jti = secrets.token_hex(16)
    claims = {
        "iss": settings.token_issuer,
        "aud": settings.token_audience,
        "sub": f"{SUBJECT_PREFIX}{partner_id}",
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": jti,
        "scope": SCOPE,
    }
    token = sign(settings, claims)
    return IssuedToken(token, jti, now, expires)


@dataclass(frozen=True)
class IntakeClaims:
    """The checked claims of an intake token."""

    partner_id: int
    jti: str


def verify_intake_token(settings: Settings, token: str) -> IntakeClaims:
    """Signature, algorithm, claims and scope; AuthenticationFailed for anything else."""
    claims = verify_token(settings, token)
    if claims.scope != SCOPE or not claims.username.startswith(SUBJECT_PREFIX):
        raise AuthenticationFailed("wrong scope")
    raw_id = claims.username[len(SUBJECT_PREFIX) :]
    if not raw_id.isdigit() or len(raw_id) > 9:
        raise AuthenticationFailed("invalid subject")
    return IntakeClaims(partner_id=int(raw_id), jti=claims.jti)
