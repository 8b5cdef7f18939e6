"""Process-owner workspace: modeler, form editor, versions, checker, diff, migration (issue 5)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("workspace", __name__, url_prefix="/workspace")
