"""Login rules without a web framework: throttling, TOTP, token revocation, account switches.

* **Throttling** (security.md §1 row 1): failed logins are counted per account name and per
  source address. An account name is locked for a while after a few failures in a row; an
  address is refused for a while after many. Unknown names are counted and locked exactly like
  real ones, so neither the message nor the timing tells whether an account exists.
* **TOTP** (RFC 6238, row 2): required for the roles in :data:`MFA_ROLES`, optional for the
  rest. A code is accepted once: the accepted time step is stored, and a code of that step or
  an earlier one is refused (no replay).
* **Demo mode**: the demo accounts that need a second factor are enrolled at their first login
  with the documented secret :data:`DEMO_TOTP_SECRET`, and the code page shows the current
  code. Demo mode is refused in production (``engine.config``).
* **Tokens** (row 7): a revoked ``jti`` is refused until the token would have expired anyway;
  disabling an account revokes every token issued to it until then.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine import audit
from engine.audit import Actor
from engine.models import LoginThrottle, RevokedToken, User, WebSession
from engine.roles import ADMIN, AUDITOR, COMMITTEE, PROCESS_OWNER, SUPERVISOR, UNIT_MANAGER

#: Roles that must log in with a second factor: those who approve decisions (supervisor, unit
#: manager, and the committee chair who decides LVU matters), change process models, read the
#: access log or manage accounts.
MFA_ROLES = frozenset({SUPERVISOR, UNIT_MANAGER, COMMITTEE, PROCESS_OWNER, AUDITOR, ADMIN})

#: The TOTP secret of the demo accounts (demo mode only; documented, so never a real secret).
DEMO_TOTP_SECRET = "LOTSENDEMOLOTSENDEMOLOTSENDEMO23"  # noqa: S105 - demo mode only
TOTP_ISSUER = "Lotsen"
TOTP_STEP_SECONDS = 30
#: Codes of the previous and next step are accepted too (clock drift between phone and server).
TOTP_DRIFT_STEPS = 1

#: Sensitive actions need a password (and code) entered at most this long ago (row 10).
FRESH_AUTH_SECONDS = 300
#: How long a login may wait between the password and the code.
PENDING_LOGIN_SECONDS = 300

#: The longest life of an API token (webapp.tokens caps every token to this).
MAX_TOKEN_TTL_SECONDS = 8 * 3600


@dataclass(frozen=True)
class ThrottlePolicy:
    """How many failures in which window lock a key, and for how long."""

    max_failures: int
    window: timedelta
    lock: timedelta


ACCOUNT_POLICY = ThrottlePolicy(5, timedelta(minutes=15), timedelta(minutes=15))
ADDRESS_POLICY = ThrottlePolicy(30, timedelta(minutes=15), timedelta(minutes=15))


@dataclass(frozen=True)
class Block:
    """A refusal: which kind of key is locked and for how many more seconds."""

    kind: str
    retry_after: int


# --- throttling ----------------------------------------------------------------------------------


def _key_hash(kind: str, key: str) -> str:
    return hashlib.sha256(f"{kind}:{key}".encode("utf-8", "replace")).hexdigest()


def _keys(username: str, address: str | None) -> list[tuple[str, str, ThrottlePolicy]]:
    keys = [("account", _key_hash("account", username.strip().casefold()), ACCOUNT_POLICY)]
    if address:
        keys.append(("address", _key_hash("address", address), ADDRESS_POLICY))
    return keys


def _row(session: Session, key_hash: str) -> LoginThrottle | None:
    return session.execute(
        select(LoginThrottle).where(LoginThrottle.key_hash == key_hash).with_for_update()
    ).scalar_one_or_none()


def _row_or_new(session: Session, kind: str, key_hash: str, now: datetime) -> LoginThrottle:
    row = _row(session, key_hash)
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = LoginThrottle(key_hash=key_hash, kind=kind, failures=0, window_started_at=now)
            session.add(row)
    except IntegrityError:  # a concurrent failure created it first
        row = _row(session, key_hash)
        assert row is not None
    return row


def blocked(session: Session, *, username: str, address: str | None, now: datetime) -> Block | None:
    """The lock that refuses this attempt before any password is looked at, if any."""
    for kind, key_hash, _policy in _keys(username, address):
        row = session.execute(
            select(LoginThrottle).where(LoginThrottle.key_hash == key_hash)
        ).scalar_one_or_none()
        if row is not None and row.locked_until is not None and row.locked_until > now:
            return Block(kind, _seconds_until(row.locked_until, now))
    return None


def record_failure(
    session: Session, *, username: str, address: str | None, now: datetime
) -> Block | None:
    """Count a failed attempt; return the lock it caused (None if nothing is locked yet)."""
    _forget_old_failures(session, now)
    caused: Block | None = None
    for kind, key_hash, policy in _keys(username, address):
        row = _row_or_new(session, kind, key_hash, now)
        if row.locked_until is not None and row.locked_until > now:
            continue
        if now - row.window_started_at > policy.window or row.locked_until is not None:
            row.failures, row.window_started_at, row.locked_until = 0, now, None
        row.failures += 1
        if row.failures >= policy.max_failures:
            row.locked_until = now + policy.lock
            row.failures = 0
            caused = caused or Block(kind, _seconds_until(row.locked_until, now))
    session.flush()
    return caused


def _forget_old_failures(session: Session, now: datetime) -> None:
    """Drop counters nobody has added to for a day (and whose lock is over)."""
    cutoff = now - timedelta(days=1)
    session.execute(
        delete(LoginThrottle).where(
            LoginThrottle.window_started_at < cutoff,
            (LoginThrottle.locked_until.is_(None)) | (LoginThrottle.locked_until < now),
        )
    )


def record_success(session: Session, *, username: str) -> None:
    """A complete login clears the account's failures (never the address's)."""
    key_hash = _key_hash("account", username.strip().casefold())
    session.execute(delete(LoginThrottle).where(LoginThrottle.key_hash == key_hash))


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, int((moment - now).total_seconds() + 0.999))


# --- the second factor ---------------------------------------------------------------------------


def mfa_required(user: User) -> bool:
    """True if one of the user's roles needs a second factor."""
    return any(r.role in MFA_ROLES for r in user.roles)


def new_totp_secret() -> str:
    """A fresh random base32 secret (160 bits)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, username: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=TOTP_ISSUER)


def _step(now: datetime) -> int:
    return int(now.timestamp()) // TOTP_STEP_SECONDS


def _clean_code(code: str) -> str | None:
    code = "".join(code.split())
    return code if len(code) == 6 and code.isascii() and code.isdigit() else None


def matching_step(secret: str, code: str, now: datetime, last_step: int | None) -> int | None:
    """The time step ``code`` belongs to, if it is valid now and newer than ``last_step``."""
    clean = _clean_code(code)
    if clean is None:
        return None
    totp = pyotp.TOTP(secret)
    current = _step(now)
    for step in range(current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS + 1):
        if last_step is not None and step <= last_step:
            continue
        if pyotp.utils.strings_equal(totp.at(step * TOTP_STEP_SECONDS), clean):
            return step
    return None


def verify_totp(user: User, code: str, now: datetime, secret: str | None = None) -> bool:
    """Check a code for ``user`` (or against ``secret`` while enrolling); remember its step.

    Lock the user row first (``SELECT ... FOR UPDATE`` on PostgreSQL) so that two requests
    carrying the same code cannot both pass.
    """
    secret = secret or user.totp_secret
    if not secret:
        return False
    step = matching_step(secret, code, now, user.totp_last_step)
    if step is None:
        return False
    user.totp_last_step = step
    return True


def enrol_totp(user: User, secret: str, now: datetime) -> None:
    """Store the (already confirmed) secret as the user's second factor."""
    user.totp_secret = secret
    user.totp_enrolled_at = now


def demo_code(user: User, now: datetime) -> str | None:
    """Demo mode: a code the user could type now (the next one not used yet), else None."""
    secret = user.totp_secret or DEMO_TOTP_SECRET
    totp = pyotp.TOTP(secret)
    current = _step(now)
    for step in range(current, current + TOTP_DRIFT_STEPS + 1):
        if user.totp_last_step is None or step > user.totp_last_step:
            return str(totp.at(step * TOTP_STEP_SECONDS))
    return None


# --- API tokens ----------------------------------------------------------------------------------


def token_revoked(session: Session, *, jti: str, issued_at: int, user: User) -> bool:
    """True if the token's ``jti`` is on the revocation list or its user's tokens are revoked."""
    cutoff = user.tokens_revoked_at
    if cutoff is not None and issued_at <= int(cutoff.timestamp()):
        return True
    found = session.execute(
        select(RevokedToken.id).where(RevokedToken.jti == jti[:64])
    ).scalar_one_or_none()
    return found is not None


def revoke_token(
    session: Session, actor: Actor, jti: str, now: datetime, reason: str = "revoked"
) -> bool:
    """Put ``jti`` on the revocation list; False if it was there already. Audited."""
    jti = jti.strip()[:64]
    session.execute(delete(RevokedToken).where(RevokedToken.expires_at < now))
    exists = session.execute(select(RevokedToken.id).where(RevokedToken.jti == jti)).first()
    if exists is not None:
        return False
    expires = now + timedelta(seconds=MAX_TOKEN_TTL_SECONDS + 60)
    session.add(RevokedToken(jti=jti, revoked_at=now, expires_at=expires, reason=reason[:100]))
    audit.record(session, actor, "token:revoked", object_type="token", object_id=jti)
    session.flush()
    return True


def revoke_user_tokens(session: Session, actor: Actor, user: User, now: datetime) -> None:
    """Refuse every token issued to ``user`` until now. Audited."""
    user.tokens_revoked_at = now
    audit.record(session, actor, "token:revoked_all", object_type="user", object_id=user.id)
    session.flush()


# --- accounts ------------------------------------------------------------------------------------


def end_sessions(session: Session, user_id: int, *, keep_hash: str | None = None) -> int:
    """Delete the user's login sessions (all, or all but ``keep_hash``); return how many."""
    query = delete(WebSession).where(WebSession.user_id == user_id)
    if keep_hash is not None:
        query = query.where(WebSession.id_hash != keep_hash)
    result = session.execute(query)
    return int(getattr(result, "rowcount", 0) or 0)


def disable_user(session: Session, actor: Actor, user: User, now: datetime) -> None:
    """Disable an account: its sessions end and its tokens are refused, at once. Audited."""
    if actor.user_id == user.id:
        raise ValueError("an administrator cannot disable their own account")
    user.active = False
    user.disabled_at = now
    ended = end_sessions(session, user.id)
    user.tokens_revoked_at = now
    audit.record(
        session,
        actor,
        "user:disabled",
        object_type="user",
        object_id=user.id,
        details={"sessions_ended": ended, "tokens_revoked": True},
    )
    session.flush()


def set_email(session: Session, actor: Actor, user: User, email: str | None) -> None:
    """Set the address e-mail notifications go to (None: no mail). Audited without the address."""
    user.email = email or None
    audit.record(
        session,
        actor,
        "user:email_changed",
        object_type="user",
        object_id=user.id,
        details={"has_address": user.email is not None},
    )
    session.flush()


def enable_user(session: Session, actor: Actor, user: User, now: datetime) -> None:
    """Enable an account again (its old sessions and tokens stay dead). Audited."""
    user.active = True
    user.disabled_at = None
    audit.record(session, actor, "user:enabled", object_type="user", object_id=user.id)
    session.flush()


def reset_totp(session: Session, actor: Actor, user: User) -> None:
    """Remove a lost second factor; the user enrols a new one at the next login. Audited."""
    user.totp_secret = None
    user.totp_enrolled_at = None
    user.totp_last_step = None
    ended = end_sessions(session, user.id)
    audit.record(
        session,
        actor,
        "user:totp_reset",
        object_type="user",
        object_id=user.id,
        details={"sessions_ended": ended},
    )
    session.flush()
