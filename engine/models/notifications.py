"""E-mail notifications and opt-outs (issue 6)."""

from __future__ import annotations
