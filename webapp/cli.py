"""``flask --app wsgi lotsen ...``: init, issue-token, verify-audit."""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from sqlalchemy import select

from engine import audit
from engine.audit import SYSTEM
from engine.db import unit_of_work
from engine.demo import load_demo_data
from engine.migrate import upgrade
from engine.models import User
from engine.processes import procedure_folders, publish, read_procedure_folder
from engine.workflow.problems import ModelError
from forms.spec import FormSpecError, load_form_spec
from webapp.tokens import issue_token


def publish_bundled_models() -> list[str]:
    """Publish every procedure in ``bpmn/`` whose content changed; return what happened."""
    settings = current_app.extensions["lotsen"]
    lines = []
    with unit_of_work(current_app.extensions["lotsen_db"]) as db:
        for folder in procedure_folders(settings.bpmn_dir):
            files = read_procedure_folder(folder)
            for key, spec in files.forms.items():
                try:
                    load_form_spec(spec)
                except FormSpecError as exc:
                    raise click.ClickException(f"{folder.name}/forms/{key}.json: {exc}") from exc
            try:
                version, new = publish(db, SYSTEM, files)
            except ModelError as exc:
                raise click.ClickException(f"{folder.name}: {exc}") from exc
            state = "published" if new else "unchanged"
            lines.append(f"{files.process_id} v{version.number} {state}")
    return lines


def register_cli(app: Flask) -> None:
    """Attach the ``lotsen`` command group."""

    @app.cli.group("lotsen")
    def lotsen() -> None:
        """Lotsen administration."""

    @lotsen.command("init")
    def init() -> None:
        """Migrate the database, publish the models in bpmn/, load demo data in demo mode."""
        settings = current_app.extensions["lotsen"]
        if settings.database_url.startswith("sqlite:///"):
            settings.instance_dir.mkdir(parents=True, exist_ok=True)
        upgrade(settings.database_url)
        click.echo("database: up to date")
        for line in publish_bundled_models():
            click.echo(f"model: {line}")
        if settings.demo:
            with unit_of_work(current_app.extensions["lotsen_db"]) as db:
                added = load_demo_data(db)
            click.echo(f"demo users: {added} added (password 'demo')")

    @lotsen.command("issue-token")
    @click.option("--user", "username", required=True, help="The user the token acts as.")
    @click.option("--ttl", type=int, default=None, help="Lifetime in seconds (max 8 h).")
    def issue(username: str, ttl: int | None) -> None:
        """Print a signed API token for USER."""
        settings = current_app.extensions["lotsen"]
        with unit_of_work(current_app.extensions["lotsen_db"]) as db:
            user = db.execute(select(User).where(User.username == username)).scalar_one_or_none()
            if user is None or not user.active:
                raise click.ClickException("no such active user")
            audit.record(
                db,
                SYSTEM,
                "token:issued",
                object_type="user",
                object_id=user.id,
                details={"ttl": ttl},
            )
        click.echo(issue_token(settings, username, ttl))

    @lotsen.command("verify-audit")
    def verify_audit() -> None:
        """Verify the audit hash chain; exit 1 and say where if it is broken."""
        with unit_of_work(current_app.extensions["lotsen_db"]) as db:
            broken = audit.verify_chain(db)
        if broken is not None:
            click.echo(f"audit chain BROKEN at entry {broken.seq}: {broken.reason}", err=True)
            sys.exit(1)
        click.echo("audit chain intact")
