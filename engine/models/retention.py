"""Retention (gallring) runs and erasure records (issue 4)."""

from __future__ import annotations
