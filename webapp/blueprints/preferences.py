"""A user's notification opt-outs (issue 6)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("preferences", __name__, url_prefix="/account/notifications")
