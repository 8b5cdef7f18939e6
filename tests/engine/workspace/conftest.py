"""Fixtures of the workspace engine tests: the app on a fresh database, and the form
builder's validator installed in the checker (the web app installs it when it starts)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.orm import Session
from ws_kit import validate_form

from engine.workspace import set_form_validator
from tests.engine.engine_testkit import app_on

set_form_validator(validate_form)


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The app on a fresh database (a copy of a prepared SQLite template)."""
    yield from app_on(database_url, tmp_path)


@pytest.fixture
def db(app: Flask) -> Iterator[Session]:
    """A session on the app's database; the test commits what it arranges."""
    session: Session = app.extensions["lotsen_db"]()
    yield session
    session.rollback()
    session.close()
