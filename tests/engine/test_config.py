"""Settings: production refuses to start without real secrets; demo mode needs none."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import crypto
from engine.config import DEV_SECRET_KEY, ConfigError, load_settings

SECRET = "s" * 20 + "-a-real-secret-0123456789"  # 45 characters
DATA_KEY = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def production(**changes: str | None) -> dict[str, str]:
    """A complete, valid production environment, with some variables changed or removed."""
    env = {
        "LOTSEN_ENV": "production",
        "LOTSEN_SECRET_KEY": SECRET,
        "LOTSEN_DATA_KEY": DATA_KEY,
        "LOTSEN_DATABASE_URL": "postgresql://lotsen@db/lotsen",
    }
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No LOTSEN_* variable from the surroundings leaks in; the data key is restored."""
    for key in list(os.environ):
        if key.startswith("LOTSEN_"):
            monkeypatch.delenv(key)
    yield
    crypto.configure(load_settings({"LOTSEN_ENV": "test", "LOTSEN_DEMO": "1"}).data_key)


def test_valid_production_settings() -> None:
    settings = load_settings(production())
    assert settings.env == "production" and not settings.demo and not settings.is_dev
    assert settings.secret_key == SECRET
    assert settings.data_key == base64.urlsafe_b64decode(DATA_KEY + "=")
    assert len(settings.data_key) == 32
    assert settings.database_url == "postgresql://lotsen@db/lotsen"


def test_production_is_the_default() -> None:
    with pytest.raises(ConfigError):
        load_settings({})
    assert load_settings(production(LOTSEN_ENV=None)).env == "production"


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"LOTSEN_SECRET_KEY": None}, id="no-secret-key"),
        pytest.param({"LOTSEN_SECRET_KEY": ""}, id="empty-secret-key"),
        pytest.param({"LOTSEN_SECRET_KEY": DEV_SECRET_KEY}, id="dev-secret-key"),
        pytest.param({"LOTSEN_SECRET_KEY": "x" * 31}, id="short-secret-key"),
        pytest.param({"LOTSEN_DATA_KEY": None}, id="no-data-key"),
        pytest.param(
            {"LOTSEN_DATA_KEY": base64.urlsafe_b64encode(b"k" * 16).decode()},
            id="short-data-key",
        ),
    ],
)
def test_production_refuses_unsafe_settings(changes: dict[str, str | None]) -> None:
    with pytest.raises(ConfigError):
        load_settings(production(**changes))


def test_secrets_from_files(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n", encoding="utf-8")
    key_file = tmp_path / "data-key"
    key_file.write_text(DATA_KEY, encoding="utf-8")
    env = production(
        LOTSEN_SECRET_KEY=None,
        LOTSEN_DATA_KEY=None,
        LOTSEN_SECRET_KEY_FILE=str(secret_file),
        LOTSEN_DATA_KEY_FILE=str(key_file),
    )
    settings = load_settings(env)
    assert settings.secret_key == SECRET
    assert len(settings.data_key) == 32


@pytest.mark.parametrize(
    "env",
    [
        {"LOTSEN_DEMO": "1"},
        {"LOTSEN_DEMO": "true"},
        {"LOTSEN_ENV": "development"},
        {"LOTSEN_ENV": "test"},
    ],
)
def test_demo_and_development_work_without_secrets(env: dict[str, str]) -> None:
    settings = load_settings(env)
    assert settings.is_dev
    assert settings.secret_key == DEV_SECRET_KEY
    assert len(settings.data_key) == 32
    # The derived development key is stable, so demo data stays readable across restarts.
    assert load_settings(env).data_key == settings.data_key


def test_demo_flag_does_not_unlock_production() -> None:
    with pytest.raises(ConfigError):
        load_settings({"LOTSEN_ENV": "production", "LOTSEN_DEMO": "1"})


def test_create_app_refuses_debug_in_production(clean_environ: None, tmp_path: Path) -> None:
    from webapp import create_app

    env = production(
        LOTSEN_DATABASE_URL=f"sqlite:///{tmp_path / 'prod.db'}", LOTSEN_INSTANCE_DIR=str(tmp_path)
    )
    with pytest.raises(RuntimeError, match="DEBUG"):
        create_app({**env, "DEBUG": True})
    app = create_app(env)
    assert not app.debug
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_NAME"].startswith("__Host-")
    assert app.config["SECRET_KEY"] == SECRET
    app.extensions["lotsen_engine"].dispose()


def test_create_app_refuses_production_without_secrets(clean_environ: None, tmp_path: Path) -> None:
    from webapp import create_app

    with pytest.raises(ConfigError):
        create_app({"LOTSEN_ENV": "production", "LOTSEN_INSTANCE_DIR": str(tmp_path)})


def test_create_app_allows_debug_in_development(clean_environ: None, tmp_path: Path) -> None:
    from webapp import create_app

    app = create_app(
        {
            "LOTSEN_ENV": "development",
            "LOTSEN_INSTANCE_DIR": str(tmp_path),
            "LOTSEN_DATABASE_URL": f"sqlite:///{tmp_path / 'dev.db'}",
            "DEBUG": True,
        }
    )
    assert app.debug
    assert app.config["SESSION_COOKIE_SECURE"] is False
    app.extensions["lotsen_engine"].dispose()
