"""JSON API v1 partner intake (issue 6): ``POST /api/v1/intake`` on ``api.bp``.

The route is outside the API's user authentication (``PUBLIC_ENDPOINTS``): it takes only a
partner's intake token (``webapp.partner_tokens``), never a user token or a session, and an
intake token opens nothing else. Each referral records the sending organisation.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Response, current_app, g, jsonify, request

from engine import audit, intake
from engine.audit import Actor
from engine.db import utcnow
from engine.errors import AuthenticationFailed
from engine.partners import partner_for_token
from webapp.blueprints.api import MAX_TOKEN_LENGTH, PUBLIC_ENDPOINTS, _json_body, _unauthorized, bp
from webapp.intake_forms import content_from_json
from webapp.partner_tokens import verify_intake_token

__all__ = ["bp"]

ENDPOINT = "api.intake_referral"
PUBLIC_ENDPOINTS.add(ENDPOINT)
#: A referral is text only; anything bigger is refused before it is parsed.
MAX_BODY_BYTES = 64 * 1024


@bp.post("/intake")
def intake_referral() -> Any:
    """A partner's referral: stored in the triage queue of the unit its kind is routed to."""
    partner = _authenticate_partner()
    if isinstance(partner, Response):
        return partner
    if (request.content_length or 0) > MAX_BODY_BYTES:
        response = jsonify({"error": "Too large", "message": "The referral is too large."})
        response.status_code = 413
        return response
    now = utcnow()
    policy = partner_rate_policy()
    key = f"partner:{partner.id}"
    retry = intake.throttle_retry_after(g.db, key, now, policy)
    if retry is not None:
        audit.record(
            g.db,
            Actor(
                user_id=None,
                username=f"partner:{partner.name}"[:100],
                source_ip=request.remote_addr,
            ),
            "intake_report:throttled",
            outcome="refused",
            details={"partner_id": partner.id, "retry_after": retry},
        )
        response = jsonify(
            {
                "error": "Too many requests",
                "message": f"At most {policy.limit} referrals per hour; try again in {retry} s.",
            }
        )
        response.status_code = 429
        response.headers["Retry-After"] = str(retry)
        return response
    intake.count_submission(g.db, key, now, policy)
    body = _json_body()
    kind, content = content_from_json(body)
    actor = Actor(
        user_id=None, username=f"partner:{partner.name}"[:100], source_ip=request.remote_addr
    )
    report = intake.receive_report(
        g.db, actor, kind=kind, content=content, channel="partner_api", partner=partner
    )
    response = jsonify(
        {
            "receipt": report.receipt,
            "kind": report.kind,
            "received_at": report.received_at.isoformat(),
            "partner": partner.name,
        }
    )
    response.status_code = 201
    return response


def partner_rate_policy() -> intake.RatePolicy:
    """Referrals per partner and hour (``PARTNER_RATE_LIMIT`` in the app config; default 120):
    a leaked or runaway partner system cannot flood the triage queue."""
    return intake.RatePolicy(
        limit=int(current_app.config.get("PARTNER_RATE_LIMIT", 120)), window=timedelta(hours=1)
    )


def _authenticate_partner() -> Any:
    """The partner of a valid intake token, or the 401 response (audited, token never logged)."""
    g.user = None
    g.actor = Actor(user_id=None, username="anonymous", source_ip=request.remote_addr)
    header = request.headers.get("Authorization") or ""
    scheme, _, token = header.partition(" ")
    token = token.strip()
    reason = None
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        reason = "malformed authorization header"
    else:
        try:
            claims = verify_intake_token(current_app.extensions["lotsen"], token)
            return partner_for_token(
                g.db, jti=claims.jti, partner_id=claims.partner_id, now=utcnow()
            )
        except AuthenticationFailed as exc:
            reason = exc.message
        except Exception:  # anything a hostile token provokes: fail closed
            reason = "invalid token"
    audit.record(
        g.db,
        g.actor,
        "auth:token_rejected",
        outcome="denied",
        details={"path": request.path, "method": request.method, "reason": reason},
    )
    return _unauthorized("An intake token of an active partner is required.")
