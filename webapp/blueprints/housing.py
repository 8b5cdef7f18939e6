"""The housing company contact's own notifications, without personal data (issue 3)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("housing", __name__, url_prefix="/housing")
