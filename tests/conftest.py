"""Shared fixtures: a fresh database per test (SQLite, and PostgreSQL when configured),
the app with the bundled procedures and demo users, and a logged-in client helper."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from engine.audit import Actor
from engine.db import Base, normalize_url, unit_of_work
from engine.demo import load_demo_data
from engine.models import Unit, User

PG_URL = os.environ.get("LOTSEN_TEST_DATABASE_URL")
ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "webapp" / "translations"


def pytest_configure(config: pytest.Config) -> None:
    """Compile the Swedish catalogue when it is missing or stale (a fresh checkout)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    for po in TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as handle:
            catalog = read_po(handle)
        tmp = mo.with_name(f"messages.{os.getpid()}.mo.tmp")
        with tmp.open("wb") as handle:
            write_mo(handle, catalog, use_fuzzy=True)
        tmp.replace(mo)


BACKENDS = ["sqlite", "postgres"]

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def _pg_schema_url(schema: str) -> str:
    assert PG_URL
    base = normalize_url(PG_URL)
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lotsen-test.db'}"
        return
    if not PG_URL:
        pytest.skip("LOTSEN_TEST_DATABASE_URL not set")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalize_url(PG_URL))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _pg_schema_url(schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def make_app(database_url: str, tmp_path: Path, **overrides: Any) -> Flask:
    """An app on ``database_url`` with the schema, the bundled models and demo users."""
    from webapp import create_app
    from webapp.cli import publish_bundled_models

    app = create_app(
        {
            "LOTSEN_DATABASE_URL": database_url,
            "LOTSEN_ENV": "test",
            "LOTSEN_DEMO": "1",
            "LOTSEN_INSTANCE_DIR": str(tmp_path),
            "TESTING": True,
            **overrides,
        }
    )
    Base.metadata.create_all(app.extensions["lotsen_engine"])
    with app.extensions["lotsen_engine"].begin() as conn:
        # PostgreSQL: the audit log is append-only as in production (the migration installs
        # the same triggers); a no-op on SQLite.
        from engine.audit_protection import install_pg_protection

        install_pg_protection(conn)
    with app.app_context():
        publish_bundled_models()
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        load_demo_data(db)
    return app


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The Lotsen app on a fresh database."""
    application = make_app(database_url, tmp_path)
    yield application
    application.extensions["lotsen_engine"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """An anonymous browser."""
    return app.test_client()


@pytest.fixture
def db(app: Flask) -> Iterator[Session]:
    """A database session for arranging and asserting (commit what you arrange)."""
    session = app.extensions["lotsen_db"]()
    yield session
    session.rollback()
    session.close()


def csrf_token_from(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = CSRF_RE.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


TOTP_SECRET_RE = re.compile(r'data-totp-secret="([A-Z2-7]+)"')


def totp_code(app: Flask, username: str, page: str = "") -> str:
    """A TOTP code the app accepts now for ``username`` (computed with pyotp).

    The secret is the user's stored one, or the new key shown on ``page`` while enrolling.
    A code is accepted once per 30-second step; when an earlier login in the same test used
    this step already, the user's last used step is moved back first (test arrangement: it
    stands for a login 30 seconds later).
    """
    import pyotp

    from engine.db import utcnow
    from engine.login import TOTP_STEP_SECONDS

    step = int(utcnow().timestamp()) // TOTP_STEP_SECONDS
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        user = db.execute(select(User).where(User.username == username)).scalar_one()
        shown = TOTP_SECRET_RE.search(page)
        secret = shown.group(1) if shown and user.totp_secret is None else user.totp_secret
        assert secret, f"{username} has no TOTP secret"
        if user.totp_last_step is not None and user.totp_last_step >= step:
            user.totp_last_step = step - 1
    return str(pyotp.TOTP(secret).at(step * TOTP_STEP_SECONDS))


def finish_login(client: FlaskClient, response: Any, username: str) -> Any:
    """After the password: enter the TOTP code when the app asks for one (else unchanged)."""
    if response.status_code != 303 or not response.headers["Location"].startswith("/login/totp"):
        return response
    page = client.get("/login/totp").get_data(as_text=True)
    code = totp_code(client.application, username, page)
    return client.post("/login/totp", data={"code": code, "csrf_token": csrf_token_from(page)})


def login(client: FlaskClient, username: str, password: str = "demo") -> FlaskClient:
    """Log ``client`` in through the real login form (and the TOTP step where there is one)."""
    page = client.get("/login")
    token = csrf_token_from(page.get_data(as_text=True))
    response = client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )
    assert response.status_code == 303, f"login of {username} failed: {response.status_code}"
    response = finish_login(client, response, username)
    assert response.status_code == 303, f"TOTP step of {username} failed: {response.status_code}"
    return client


@pytest.fixture
def login_as(app: Flask):  # type: ignore[no-untyped-def]
    """``login_as("handlaggare")`` gives a fresh client logged in as that demo user."""

    def _login(username: str) -> FlaskClient:
        return login(app.test_client(), username)

    return _login


def actor(session: Session, username: str) -> Actor:
    """The engine actor of a demo user."""
    user = session.execute(select(User).where(User.username == username)).scalar_one()
    return Actor(
        user_id=user.id,
        username=user.username,
        roles=frozenset((r.role, r.unit_id) for r in user.roles),
    )


def unit_id(session: Session, key: str) -> int:
    """The id of a demo unit (``vuxenenheten`` or ``barn_och_unga``)."""
    return session.execute(select(Unit.id).where(Unit.key == key)).scalar_one()
