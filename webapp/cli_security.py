"""``lotsen`` commands for key rotation and retention (issue 4)."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Add this module's commands to the ``lotsen`` group."""
    _ = group
