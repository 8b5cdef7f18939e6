"""Fixtures for forms tests: a bare Flask app (Babel on, CSRF off) and a sample spec."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask_babel import Babel
from forms_testkit import SAMPLE, TEMPLATES

from forms.spec import FormSpec, load_form_spec


@pytest.fixture
def app() -> Iterator[Flask]:
    app = Flask(__name__, template_folder=str(TEMPLATES))
    app.config.update(
        SECRET_KEY="test-secret",
        WTF_CSRF_ENABLED=False,
        TESTING=True,
        BABEL_DEFAULT_LOCALE="sv",
    )
    Babel(app)
    with app.test_request_context("/", method="POST"):
        yield app


@pytest.fixture
def csrf_app() -> Iterator[Flask]:
    app = Flask(__name__, template_folder=str(TEMPLATES))
    app.config.update(SECRET_KEY="test-secret", WTF_CSRF_ENABLED=True, TESTING=True)
    Babel(app)
    with app.test_request_context("/", method="POST"):
        yield app


@pytest.fixture
def spec() -> FormSpec:
    pytest.importorskip("engine.workflow.expressions")
    return load_form_spec(SAMPLE)
