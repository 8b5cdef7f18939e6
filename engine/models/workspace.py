"""Process-owner workspace records (issue 5)."""

from __future__ import annotations
