"""The Lotsen web application: ``create_app`` wires settings, database, security and views."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, g, request, session

from engine import crypto
from engine.config import load_settings
from engine.db import make_engine, make_session_factory
from webapp.extensions import babel, csrf
from webapp.security import init_security, load_session_user
from webapp.sessions import DbSessionInterface

LANGUAGES = ("sv", "en")


def select_locale() -> str:
    """Swedish unless the user picked English (stored in the session)."""
    lang = session.get("lang") if session else None
    return lang if lang in LANGUAGES else "sv"


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. ``overrides``: LOTSEN_* settings and Flask config keys (for tests)."""
    overrides = dict(overrides or {})
    env = {**os.environ, **{k: str(v) for k, v in overrides.items() if k.startswith("LOTSEN_")}}
    settings = load_settings(env)
    crypto.configure(settings.data_key, list(settings.old_data_keys))
    app = Flask(__name__, instance_path=str(settings.instance_dir))
    secure_cookies = not settings.is_dev
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=4 * 1024 * 1024,
        MAX_FORM_MEMORY_SIZE=1024 * 1024,
        SESSION_COOKIE_NAME="__Host-lotsen" if secure_cookies else "lotsen_session",
        SESSION_COOKIE_SECURE=secure_cookies,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,
        BABEL_DEFAULT_LOCALE="sv",
        BABEL_TRANSLATION_DIRECTORIES="translations",
        JSON_SORT_KEYS=False,
    )
    app.config.update({k: v for k, v in overrides.items() if not k.startswith("LOTSEN_")})
    if app.config.get("DEBUG") and not settings.is_dev:
        raise RuntimeError("DEBUG is refused outside development")
    engine = make_engine(settings.database_url)
    app.extensions["lotsen"] = settings
    app.extensions["lotsen_engine"] = engine
    app.extensions["lotsen_db"] = make_session_factory(engine)
    app.session_interface = DbSessionInterface()
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    init_security(app)
    _register_request_scope(app)
    _register_blueprints(app)
    from webapp.errors import register_error_handlers

    register_error_handlers(app)
    from webapp.cli import register_cli

    register_cli(app)
    from webapp import templating

    templating.init_app(app)
    return app


def _register_request_scope(app: Flask) -> None:
    """One database session per request, committed once at the end (or rolled back)."""

    @app.before_request
    def open_db() -> None:
        g.db = app.extensions["lotsen_db"]()
        g.lang = select_locale()
        load_session_user()

    @app.after_request
    def commit_db(response: Any) -> Any:
        db = g.pop("db", None)
        if db is None:
            return response
        try:
            if g.get("rollback_only"):
                db.rollback()
            else:
                db.commit()
        finally:
            db.close()
        return response

    @app.teardown_request
    def close_db(exc: BaseException | None) -> None:
        db = g.pop("db", None)
        if db is not None:
            db.rollback()
            db.close()

    _ = request  # imported for handlers defined elsewhere


def _register_blueprints(app: Flask) -> None:
    from webapp.blueprints import register_blueprints

    register_blueprints(app)
