"""``flask --app wsgi lotsen ...``: init, tokens, verify-audit, the timer worker."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

import click
from flask import Flask, current_app
from sqlalchemy import select

from engine import audit, timers
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

    from engine import retention
    from webapp import cli_intake, cli_notify, cli_security

    for part in (cli_intake, cli_notify, cli_security):
        part.register(lotsen)

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
        # a restored backup must not bring back cases erased after it was taken
        ledger = retention.Ledger(retention.ledger_path(settings))
        for number in retention.reapply(current_app.extensions["lotsen_db"], ledger):
            click.echo(f"retention: case {number} erased again (it was erased after the backup)")
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

    @lotsen.command("revoke-token")
    @click.option("--jti", default=None, help="The token id (jti claim) to revoke.")
    @click.option("--user", "username", default=None, help="Revoke every token of USER.")
    def revoke(jti: str | None, username: str | None) -> None:
        """Revoke one API token (--jti) or every token issued so far to a user (--user)."""
        from engine import login
        from engine.db import utcnow

        if bool(jti) == bool(username):
            raise click.UsageError("give exactly one of --jti and --user")
        with unit_of_work(current_app.extensions["lotsen_db"]) as db:
            if jti:
                new = login.revoke_token(db, SYSTEM, jti, utcnow(), reason="cli")
                click.echo("token revoked" if new else "token was already revoked")
                return
            user = db.execute(select(User).where(User.username == username)).scalar_one_or_none()
            if user is None:
                raise click.ClickException("no such user")
            login.revoke_user_tokens(db, SYSTEM, user, utcnow())
        click.echo(f"every token of {username} issued until now is revoked")

    @lotsen.command("verify-audit")
    def verify_audit() -> None:
        """Verify the audit hash chain; exit 1 and say where if it is broken."""
        with unit_of_work(current_app.extensions["lotsen_db"]) as db:
            broken = audit.verify_chain(db)
        if broken is not None:
            click.echo(f"audit chain BROKEN at entry {broken.seq}: {broken.reason}", err=True)
            sys.exit(1)
        click.echo("audit chain intact")

    @lotsen.command("worker")
    @click.option(
        "--interval",
        type=click.FloatRange(0.1, timers.MAX_INTERVAL),
        default=15.0,
        show_default=True,
        help="Seconds between passes (at most 30, so timers fire within a minute).",
    )
    @click.option("--batch", type=click.IntRange(1, 1000), default=50, show_default=True)
    def worker(interval: float, batch: int) -> None:
        """Fire due BPMN timers until SIGTERM/SIGINT (run any number, on any hosts)."""
        if not logging.getLogger().handlers:
            logging.basicConfig(
                level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
            )
        logging.getLogger("lotsen.timers").setLevel(logging.INFO)
        stop = threading.Event()

        def _stop(signum: int, _frame: FrameType | None) -> None:
            logging.getLogger("lotsen.timers").info(
                "signal %s: stopping after the current instance", signal.Signals(signum).name
            )
            stop.set()

        previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        notifier = cli_notify.start_sweeper(current_app, stop, interval)
        try:
            total = timers.serve(
                current_app.extensions["lotsen_db"], stop, interval=interval, batch=batch
            )
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            stop.set()
            notifier.join(timeout=60)
        click.echo(f"timer worker stopped: {total} fired")

    @lotsen.command("run-timers")
    @click.option("--once", is_flag=True, required=True, help="One pass, then exit (for cron).")
    @click.option("--batch", type=click.IntRange(1, 1000), default=50, show_default=True)
    def run_timers(once: bool, batch: int) -> None:
        """Fire every timer due now, once, and print how many instances fired."""
        stats = timers.run_until_drained(
            current_app.extensions["lotsen_db"], timers.worker_id(), batch=batch
        )
        click.echo(f"timers fired: {stats.fired} (claimed {stats.claimed}, failed {stats.failed})")
        notified = cli_notify.sweep_once()
        click.echo(cli_notify.describe(notified))
        if stats.failed:
            sys.exit(1)
