"""Blueprints, registered in one place so the route inventory is easy to find."""

from __future__ import annotations

from flask import Flask

from webapp.blueprints import account, admin, api, audit, auth, cases, decisions, main, tasks


def register_blueprints(app: Flask) -> None:
    """Register every blueprint (each module defines ``bp``)."""
    for module in (auth, main, cases, tasks, decisions, api, audit):
        app.register_blueprint(module.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(admin.bp)
