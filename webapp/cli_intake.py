"""``lotsen`` commands for partner organisations and their intake tokens (issue 6)."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Add this module's commands to the ``lotsen`` group."""
    _ = group
