"""Break-the-glass grants and related access records (issue 4)."""

from __future__ import annotations
