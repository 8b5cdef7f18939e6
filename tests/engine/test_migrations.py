"""Alembic: the migrations build exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import engine.models  # noqa: F401 - registers every table on Base.metadata
from engine.db import Base, make_engine
from engine.migrate import alembic_config, upgrade


def _tables(url: str) -> set[str]:
    db = make_engine(url)
    try:
        with db.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        db.dispose()


def _differences(url: str) -> list[object]:
    db = make_engine(url)
    try:
        with db.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "render_as_batch": True}
            )
            return list(compare_metadata(context, Base.metadata))
    finally:
        db.dispose()


def test_upgrade_builds_exactly_the_model_tables(database_url: str) -> None:
    upgrade(database_url)
    assert _tables(database_url) == set(Base.metadata.tables) | {"alembic_version"}


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    """What ``alembic check`` does: autogenerate finds nothing to change."""
    upgrade(database_url)
    assert _differences(database_url) == []


def test_upgrade_is_idempotent_and_reversible(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)
    assert _differences(database_url) == []
    command.downgrade(alembic_config(database_url), "base")
    assert _tables(database_url) <= {"alembic_version"}
    upgrade(database_url)
    assert _tables(database_url) == set(Base.metadata.tables) | {"alembic_version"}


def test_upgrade_creates_a_missing_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    upgrade(f"sqlite:///{path}")
    assert path.exists()
    assert "audit_log" in _tables(f"sqlite:///{path}")
