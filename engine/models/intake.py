"""Intake reports, partner organisations and triage (issue 6)."""

from __future__ import annotations
