"""Break the glass and the exact personnummer lookup (issue 4)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("protection", __name__, url_prefix="")
