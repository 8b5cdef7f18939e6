"""Blueprints, registered in one place so the route inventory is easy to find."""

from __future__ import annotations

from flask import Flask

from webapp.blueprints import (
    account,
    admin,
    api,
    api_intake,
    api_workspace,
    audit,
    auth,
    cases,
    decisions,
    documents,
    housing,
    intake,
    main,
    preferences,
    protection,
    public,
    sso,
    tasks,
    workspace,
)

#: modules that add routes to ``api.bp`` (imported above, before it is registered)
API_PARTS = (api_intake, api_workspace)


def register_blueprints(app: Flask) -> None:
    """Register every blueprint (each module defines ``bp``)."""
    for module in (auth, main, cases, tasks, decisions, api, audit):
        app.register_blueprint(module.bp)
    for module in (account, admin, documents, housing, intake, preferences, protection, public):
        app.register_blueprint(module.bp)
    for module in (sso, workspace):
        app.register_blueprint(module.bp)
