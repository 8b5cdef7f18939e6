"""Outgoing documents of domain.md §10: render, approve, download (issue 3)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("documents", __name__, url_prefix="/documents")
