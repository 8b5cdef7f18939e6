"""`lotsen rotate-keys`, `new-data-key` and `retention` from the command line, and the lock file.

The commands print counts, case numbers and dates, never personal data; their exit codes tell a
script whether work is left (rotate-keys --status: 1) or a run stopped early (2).
"""

from __future__ import annotations

import base64
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from sqlalchemy import select

from engine import crypto
from engine.models import AuditEntry, Case, Subject
from tests.engine.engine_testkit import BASIC_INTAKE, app_on, start_committed
from tests.engine.retention_kit import CLOSED_ADULT, number_of, run_scenario

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    application = next(app_on(database_url, tmp_path))
    key = application.extensions["lotsen"].data_key
    yield application
    crypto.configure(key)
    application.extensions["lotsen_engine"].dispose()


def _b64(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


def test_rotate_keys_from_the_command_line(app: Flask, database_url: str, tmp_path: Path) -> None:
    from webapp import create_app

    old_key = app.extensions["lotsen"].data_key
    start_committed(app, intake={**BASIC_INTAKE, "subject_name": "Rotera Mig"})
    new_key = base64.urlsafe_b64decode(
        app.test_cli_runner().invoke(args=["lotsen", "new-data-key"]).output.strip() + "="
    )
    assert len(new_key) == 32
    rotated = create_app(
        {
            "LOTSEN_DATABASE_URL": database_url,
            "LOTSEN_ENV": "test",
            "LOTSEN_INSTANCE_DIR": str(tmp_path),
            "LOTSEN_DATA_KEY": _b64(new_key),
            "LOTSEN_DATA_KEY_OLD": _b64(old_key),
            "TESTING": True,
        }
    )
    try:
        runner = rotated.test_cli_runner()
        status = runner.invoke(args=["lotsen", "rotate-keys", "--status"])
        assert status.exit_code == 1 and "subjects.name: 1 to rotate" in status.output
        partial = runner.invoke(
            args=["lotsen", "rotate-keys", "--batch", "1", "--max-batches", "1"]
        )
        assert partial.exit_code == 2 and "run it again" in partial.output
        done = runner.invoke(args=["lotsen", "rotate-keys", "--batch", "1"])
        assert done.exit_code == 0 and "rotation complete" in done.output
        assert "Rotera" not in status.output + partial.output + done.output
        assert runner.invoke(args=["lotsen", "rotate-keys", "--status"]).exit_code == 0
        crypto.configure(new_key)  # the old key is no longer needed
        with rotated.extensions["lotsen_db"]() as s:
            assert s.execute(select(Subject.name)).scalars().all() == ["Rotera Mig"]
        assert runner.invoke(args=["lotsen", "verify-audit"]).exit_code == 0
    finally:
        rotated.extensions["lotsen_engine"].dispose()


def test_rotate_keys_without_the_old_key_says_which_key_is_missing(
    app: Flask, database_url: str, tmp_path: Path
) -> None:
    from webapp import create_app

    start_committed(app)
    stranger = create_app(
        {
            "LOTSEN_DATABASE_URL": database_url,
            "LOTSEN_ENV": "test",
            "LOTSEN_INSTANCE_DIR": str(tmp_path),
            "LOTSEN_DATA_KEY": _b64(b"k" * 32),
            "TESTING": True,
        }
    )
    try:
        result = stranger.test_cli_runner().invoke(args=["lotsen", "rotate-keys"])
        assert result.exit_code == 1
        assert "not configured" in result.output and "LOTSEN_DATA_KEY_OLD" in result.output
    finally:
        stranger.extensions["lotsen_engine"].dispose()


def test_retention_dry_run_apply_and_reapply(app: Flask) -> None:
    old = run_scenario(app, CLOSED_ADULT, datetime(2019, 3, 4, 9, tzinfo=UTC), name="Cli Gallras")
    number = number_of(app, old)
    runner = app.test_cli_runner()
    usage = runner.invoke(args=["lotsen", "retention"])
    assert usage.exit_code == 2
    dry = runner.invoke(args=["lotsen", "retention", "--dry-run", "--today", "2026-11-28"])
    assert dry.exit_code == 0, dry.output
    assert number in dry.output and "due 2024-03-04" in dry.output
    assert "1 cases would be erased" in dry.output and "Cli Gallras" not in dry.output
    with app.extensions["lotsen_db"]() as s:
        assert s.get(Case, old) is not None
    unapproved = runner.invoke(args=["lotsen", "retention", "--apply"])
    assert unapproved.exit_code == 2 and "--approved-by" in unapproved.output
    wrong = runner.invoke(args=["lotsen", "retention", "--apply", "--approved-by", "handlaggare"])
    assert wrong.exit_code == 1 and "supervisor or unit manager" in wrong.output
    with app.extensions["lotsen_db"]() as s:
        assert s.get(Case, old) is not None
    applied = runner.invoke(
        args=[
            "lotsen",
            "retention",
            "--apply",
            "--today",
            "2026-11-28",
            "--approved-by",
            "arbetsledare",
        ]
    )
    assert applied.exit_code == 0 and "1 cases erased" in applied.output
    with app.extensions["lotsen_db"]() as s:
        assert s.get(Case, old) is None
        erased = s.execute(select(AuditEntry).where(AuditEntry.action == "case:erased"))
        assert [e.actor_name for e in erased.scalars()] == ["arbetsledare"]
    again = runner.invoke(args=["lotsen", "retention", "--reapply"])
    assert again.exit_code == 0 and "0 cases erased again" in again.output


def test_the_lock_pins_every_requirement_within_its_range() -> None:
    lock = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            lock[canonicalize_name(name)] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    problems = []
    for line in wanted:
        req = Requirement(line)
        pinned = lock.get(canonicalize_name(req.name))
        if pinned is None:
            problems.append(f"{req.name} is not in requirements.lock (run make lock)")
        elif not req.specifier.contains(pinned, prereleases=True):
            problems.append(f"{req.name}=={pinned} is outside {req.specifier} (run make lock)")
    assert not problems, "\n".join(problems)
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet -r requirements.lock" in makefile
    assert "\naudit:" in makefile and "scripts/audit_dependencies.py" in makefile
