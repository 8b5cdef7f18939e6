"""Public e-service: concern reports at /anmalan without login (issue 6)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("public", __name__, url_prefix="")
