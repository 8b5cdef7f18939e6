"""``lotsen`` commands for key rotation and retention (issue 4).

``rotate-keys``   re-encrypt every encrypted column under the active data key (resumable).
``new-data-key``  print a fresh random data key.
``retention``     --dry-run lists the cases due for gallring, --apply erases them, --reapply
                  erases again the cases of the erasure ledger after a restore from backup.

Nothing printed here holds personal data: case numbers, procedures, dates and counts only.
"""

from __future__ import annotations

import sys
from datetime import datetime

import click
from flask import current_app
from sqlalchemy.orm import Session, sessionmaker

from engine import keys, retention
from engine.audit import SYSTEM


def _factory() -> sessionmaker[Session]:
    factory: sessionmaker[Session] = current_app.extensions["lotsen_db"]
    return factory


def register(group: click.Group) -> None:
    """Add this module's commands to the ``lotsen`` group."""

    @group.command("rotate-keys")
    @click.option("--batch", type=click.IntRange(1, 100_000), default=500, show_default=True)
    @click.option("--max-batches", type=click.IntRange(1), default=None, help="Stop early.")
    @click.option("--status", is_flag=True, help="Only count what is left; change nothing.")
    def rotate_keys(batch: int, max_batches: int | None, status: bool) -> None:
        """Re-encrypt personal data still sealed with a retired key (LOTSEN_DATA_KEY_OLD)."""
        keys.configure_from_settings(current_app.extensions["lotsen"])
        if status:
            with _factory()() as session:
                left = keys.pending(session)
            for name, count in left.items():
                if count:
                    click.echo(f"{name}: {count} to rotate")
            total = sum(left.values())
            click.echo(f"{total} values sealed with a retired key")
            sys.exit(1 if total else 0)
        try:
            report = keys.rotate(_factory(), batch_size=batch, max_batches=max_batches)
        except keys.RotationError as exc:
            raise click.ClickException(str(exc)) from exc
        for name, count in report.rows.items():
            click.echo(f"{name}: {count} re-encrypted")
        if report.finished:
            click.echo(
                f"rotation complete ({report.total} values): the retired keys may now be "
                "removed from LOTSEN_DATA_KEY_OLD"
            )
        else:
            click.echo(f"rotation stopped after {report.batches} batches: run it again")
            sys.exit(2)

    @group.command("new-data-key")
    def new_data_key() -> None:
        """Print a new random data key (base64url) for LOTSEN_DATA_KEY."""
        click.echo(keys.new_key_text())

    @group.command("retention")
    @click.option("--dry-run", "mode", flag_value="dry-run", help="List what would be erased.")
    @click.option("--apply", "mode", flag_value="apply", help="Erase what is due.")
    @click.option("--reapply", "mode", flag_value="reapply", help="Re-apply the erasure ledger.")
    @click.option(
        "--today",
        type=click.DateTime(formats=["%Y-%m-%d"]),
        default=None,
        help="Assess as of this date (default: today, UTC).",
    )
    @click.option(
        "--approved-by",
        default=None,
        help="--apply: the supervisor or unit manager who approved the dry-run list.",
    )
    def retention_command(mode: str | None, today: object, approved_by: str | None) -> None:
        """Gallring of closed cases per bpmn/retention.toml."""
        if mode is None:
            raise click.UsageError("give one of --dry-run, --apply, --reapply")
        if mode == "apply" and not approved_by:
            raise click.UsageError("--apply needs --approved-by (who approved the dry run)")
        settings = current_app.extensions["lotsen"]
        ledger = retention.Ledger(retention.ledger_path(settings))
        try:
            if mode == "reapply":
                erased = retention.reapply(_factory(), ledger, SYSTEM)
                for number in erased:
                    click.echo(f"{number}\terased again (ledger)")
                click.echo(f"ledger re-applied: {len(erased)} cases erased again")
                return
            policy = retention.load_policy(settings.bpmn_dir)
            day = today.date() if isinstance(today, datetime) else retention.today()
            if mode == "dry-run":
                report = retention.dry_run(_factory(), policy, day, SYSTEM)
            else:
                with _factory()() as session:
                    who = retention.approver(session, approved_by or "")
                report = retention.apply(_factory(), policy, ledger, day, who)
        except retention.RetentionError as exc:
            raise click.ClickException(str(exc)) from exc
        for line in retention.iter_lines(report):
            click.echo(line)
        verb = "would be erased" if mode == "dry-run" else "erased"
        click.echo(f"{len(report.erased)} cases {verb}, {len(report.kept)} kept ({day})")
