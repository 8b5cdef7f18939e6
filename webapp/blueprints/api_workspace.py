"""JSON API v1 for process versions (issue 5): routes on ``api.bp``.

Routes are added to the API blueprint so they share its authentication, errors and CSRF rules.
"""

from __future__ import annotations

from webapp.blueprints.api import bp

__all__ = ["bp"]
