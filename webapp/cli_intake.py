"""``lotsen`` commands for partner organisations and their intake tokens (issue 6).

``create-partner NAME --kind police`` registers the partner (once) and prints a new intake
token; ``revoke-partner-token --jti JTI`` or ``--partner NAME`` revokes tokens at once;
``partner-active NAME --off`` switches a partner off (its tokens are then refused).
"""

from __future__ import annotations

import click
from flask import current_app

from engine import partners
from engine.audit import SYSTEM
from engine.db import unit_of_work, utcnow
from engine.errors import LotsenError
from engine.intake import PARTNER_KINDS
from webapp.partner_tokens import DEFAULT_TTL_DAYS, MAX_TTL_DAYS, issue_intake_token


def register(group: click.Group) -> None:
    """Add this module's commands to the ``lotsen`` group."""

    @group.command("create-partner")
    @click.argument("name")
    @click.option("--kind", type=click.Choice(PARTNER_KINDS), default="ngo", show_default=True)
    @click.option(
        "--days",
        type=click.IntRange(1, MAX_TTL_DAYS),
        default=DEFAULT_TTL_DAYS,
        show_default=True,
        help="Lifetime of the token in days.",
    )
    def create_partner(name: str, kind: str, days: int) -> None:
        """Register partner NAME (if new) and print a new intake token for it."""
        settings = current_app.extensions["lotsen"]
        try:
            with unit_of_work(current_app.extensions["lotsen_db"]) as db:
                partner = partners.create_partner(db, SYSTEM, name=name, kind=kind)
                if not partner.active:
                    raise click.ClickException(f"{partner.name} is switched off")
                issued = issue_intake_token(settings, partner.id, days)
                partners.record_token(
                    db,
                    SYSTEM,
                    partner,
                    jti=issued.jti,
                    issued_at=issued.issued_at,
                    expires_at=issued.expires_at,
                )
        except LotsenError as exc:
            raise click.ClickException(_message(exc)) from exc
        click.echo(f"partner: {partner.name} ({partner.kind})", err=True)
        click.echo(f"jti: {issued.jti}  expires: {issued.expires_at.isoformat()}", err=True)
        click.echo(issued.token)

    @group.command("revoke-partner-token")
    @click.option("--jti", default=None, help="Revoke this token.")
    @click.option("--partner", "partner_name", default=None, help="Revoke every token of NAME.")
    def revoke(jti: str | None, partner_name: str | None) -> None:
        """Revoke an intake token, or all tokens of a partner (refused at once)."""
        if (jti is None) == (partner_name is None):
            raise click.UsageError("give exactly one of --jti and --partner")
        try:
            with unit_of_work(current_app.extensions["lotsen_db"]) as db:
                count = partners.revoke_tokens(db, SYSTEM, utcnow(), jti=jti, partner=partner_name)
        except LotsenError as exc:
            raise click.ClickException(_message(exc)) from exc
        click.echo(f"revoked: {count}")

    @group.command("list-partners")
    def list_partners() -> None:
        """Partners, their kind, whether active, and their usable (unrevoked, unexpired) tokens."""
        with unit_of_work(current_app.extensions["lotsen_db"]) as db:
            for line in partners.describe_partners(db, utcnow()):
                click.echo(line)

    @group.command("partner-active")
    @click.argument("name")
    @click.option("--on/--off", "active", default=True)
    def partner_active(name: str, active: bool) -> None:
        """Switch partner NAME on or off."""
        try:
            with unit_of_work(current_app.extensions["lotsen_db"]) as db:
                partners.set_active(db, SYSTEM, name, active)
        except LotsenError as exc:
            raise click.ClickException(_message(exc)) from exc
        click.echo(f"{name}: {'active' if active else 'inactive'}")


def _message(exc: LotsenError) -> str:
    errors = getattr(exc, "field_errors", None)
    if errors:
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())
    return exc.message
