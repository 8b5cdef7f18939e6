"""API bearer tokens: the only user of python-jose in Lotsen.

One fixed algorithm; ``exp``, ``iat``, ``iss``, ``aud``, ``sub`` and ``jti`` are required,
so a token without an expiry, for another audience or with ``alg: none`` is refused.
``auth_time`` says when the holder last proved who they are (issuing a token counts); a
sensitive call needs it to be recent (``webapp.blueprints.api``). Revocation (a ``jti`` on the
list, or every token of a disabled user) is checked by the caller on every use
(``engine.login.token_revoked``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from jose import JWTError, jwt

from engine.config import Settings
from engine.db import utcnow
from engine.errors import AuthenticationFailed
from engine.login import MAX_TOKEN_TTL_SECONDS

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub", "jti")
MAX_TTL_SECONDS = MAX_TOKEN_TTL_SECONDS


@dataclass(frozen=True)
class TokenClaims:
    """The checked claims of a token."""

    username: str
    jti: str
    scope: str
    issued_at: int = 0
    #: When the holder last authenticated (epoch seconds); None for a token without the claim.
    auth_time: int | None = None


def _signing_key(settings: Settings) -> str:
    # A key derived for tokens only, so the session secret is never used directly.
    import hashlib
    import hmac

    return hmac.new(settings.secret_key.encode(), b"lotsen-api-token", hashlib.sha256).hexdigest()


def issue_token(
    settings: Settings,
    username: str,
    ttl_seconds: int | None = None,
    scope: str = "api",
    auth_time: int | None = None,
) -> str:
    """A signed, short-lived token for ``username`` (``auth_time``: default, now)."""
    ttl = min(int(ttl_seconds or settings.token_default_ttl), MAX_TTL_SECONDS)
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    now = int(utcnow().timestamp())
    claims = {
        "iss": settings.token_issuer,
        "aud": settings.token_audience,
        "sub": username,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": secrets.token_hex(16),
        "scope": scope,
        "auth_time": now if auth_time is None else int(auth_time),
    }
    return sign(settings, claims)


def sign(settings: Settings, claims: dict[str, Any]) -> str:
    """Sign ``claims`` with the app's token key and fixed algorithm (callers set every claim
    ``verify_token`` requires; service tokens with their own lifetime use this directly)."""
    return str(jwt.encode(claims, _signing_key(settings), algorithm=ALGORITHM))


def verify_token(settings: Settings, token: str) -> TokenClaims:
    """Check signature, algorithm and every required claim; raise AuthenticationFailed."""
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise AuthenticationFailed("invalid token")
        claims: dict[str, Any] = jwt.decode(
            token,
            _signing_key(settings),
            algorithms=[ALGORITHM],
            audience=settings.token_audience,
            issuer=settings.token_issuer,
            options={
                "require_exp": True,
                "require_iat": True,
                "require_aud": True,
                "require_iss": True,
                "require_sub": True,
                "require_jti": True,
                "verify_exp": True,
                "verify_aud": True,
                "verify_iss": True,
            },
        )
    except JWTError as exc:
        raise AuthenticationFailed("invalid token") from exc
    for claim in REQUIRED_CLAIMS:
        if claim not in claims:
            raise AuthenticationFailed("invalid token")
    auth_time = claims.get("auth_time")
    iat = claims["iat"]
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise AuthenticationFailed("invalid token")
    return TokenClaims(
        username=str(claims["sub"]),
        jti=str(claims["jti"]),
        scope=str(claims.get("scope", "")),
        issued_at=int(iat),
        auth_time=_epoch(auth_time),
    )


def _epoch(value: Any) -> int | None:
    """An epoch-seconds claim, or None when it is missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)
