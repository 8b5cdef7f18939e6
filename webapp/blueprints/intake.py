"""Triage queue of the intake role and the logged-in partner referral form (issue 6)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("intake", __name__, url_prefix="/intake")
