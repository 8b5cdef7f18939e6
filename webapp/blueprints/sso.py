"""OIDC single sign-on: authorization code + PKCE (issue 4)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("sso", __name__, url_prefix="/sso")
