"""Helpers for the login, session and account tests (no tests here)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from engine.db import clock
from engine.models import AuditEntry, User, WebSession
from tests.conftest import csrf_token_from, finish_login, totp_code


class Clock:
    """The app's frozen clock, moved by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)
        clock.frozen = self.now

    def advance(self, **delta: float) -> datetime:
        self.now = self.now + timedelta(**delta)
        clock.frozen = self.now
        return self.now


@pytest.fixture
def frozen() -> Iterator[Clock]:
    """Freeze ``engine.db.clock`` at the current second; unfrozen afterwards."""
    try:
        yield Clock()
    finally:
        clock.frozen = None


def post_login(
    client: FlaskClient, username: str, password: str = "demo", ip: str = "127.0.0.1"
) -> Any:
    """Send the login form once (a fresh CSRF token from the page); the raw response."""
    page = client.get("/login", environ_base={"REMOTE_ADDR": ip}).get_data(as_text=True)
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_token_from(page)},
        environ_base={"REMOTE_ADDR": ip},
    )


def full_login(
    app: Flask, username: str, client: FlaskClient | None = None, ip: str = "127.0.0.1"
) -> FlaskClient:
    """A client logged in with the password and, where needed, the TOTP code."""
    client = client or app.test_client()
    response = finish_login(client, post_login(client, username, ip=ip), username)
    assert response.status_code == 303, response.status_code
    return client


def csrf(client: FlaskClient, url: str = "/") -> str:
    return csrf_token_from(client.get(url).get_data(as_text=True))


def logged_in(client: FlaskClient) -> bool:
    """True if the client's cookie opens the inbox."""
    return client.get("/").status_code == 200


def cookie_of(app: Flask, client: FlaskClient) -> str:
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None
    return cookie.value


def session_row(app: Flask, client: FlaskClient) -> WebSession | None:
    digest = hashlib.sha256(cookie_of(app, client).encode()).hexdigest()
    db = app.extensions["lotsen_db"]()
    try:
        return db.execute(
            select(WebSession).where(WebSession.id_hash == digest)
        ).scalar_one_or_none()
    finally:
        db.close()


def user(app: Flask, username: str) -> User:
    db = app.extensions["lotsen_db"]()
    try:
        return db.execute(select(User).where(User.username == username)).scalar_one()
    finally:
        db.close()


def audit_actions(app: Flask, since: int = 0) -> list[AuditEntry]:
    db = app.extensions["lotsen_db"]()
    try:
        rows = list(
            db.execute(select(AuditEntry).where(AuditEntry.seq > since).order_by(AuditEntry.seq))
            .scalars()
            .all()
        )
        db.expunge_all()
        return rows
    finally:
        db.close()


def audit_seq(app: Flask) -> int:
    entries = audit_actions(app)
    return entries[-1].seq if entries else 0


__all__ = ["Clock", "frozen", "full_login", "post_login", "totp_code"]
