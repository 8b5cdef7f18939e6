"""CSRF probes for break the glass, the person search and the auditor's alerts (issue 4).
Loaded by ``test_csrf``; each builder returns the post a victim's browser would make."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from engine.db import unit_of_work
from engine.models import AuditEntry, Case
from engine.models.protection import BreakGlassGrant, SecurityAlert
from tests.conftest import actor


def _search(ctx: Any) -> Any:
    from test_csrf import Attempt

    return Attempt(
        ctx.caseworker,
        "/search",
        [("personnummer", "19811218-9876")],
        lambda: ctx.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "person:searched")
        ),
    )


def _break_glass(ctx: Any) -> Any:
    from matrix_kit import login_browser
    from test_csrf import Attempt

    outsider = login_browser(ctx.app, "handlaggare.barn")  # fresh login: no re-auth step
    number = ctx.scalar(select(Case.number).where(Case.id == ctx.world.case_id))
    return Attempt(
        outsider,
        "/break-glass",
        [("case_number", number), ("reason", "Jourärende: ringde polisen om personen")],
        lambda: ctx.count(BreakGlassGrant),
    )


def _break_glass_end(ctx: Any) -> Any:
    from matrix_kit import login_browser
    from test_csrf import Attempt

    from engine import break_glass

    with unit_of_work(ctx.app.extensions["lotsen_db"]) as db:
        number = db.execute(select(Case.number).where(Case.id == ctx.world.case_id)).scalar_one()
        outcome = break_glass.request_access(
            db,
            actor(db, "arbetsledare.barn"),
            case_number=number,
            reason="Jourärende: behöver läsa beslutet nu",
        )
    grant_id = outcome.grant_id
    assert grant_id is not None
    return Attempt(
        login_browser(ctx.app, "arbetsledare.barn"),
        "/break-glass/end",
        [("grant_id", str(grant_id))],
        lambda: ctx.scalar(select(BreakGlassGrant.ended_at).where(BreakGlassGrant.id == grant_id)),
    )


def _acknowledge(ctx: Any) -> Any:
    from matrix_kit import login_browser
    from test_csrf import Attempt

    from engine import alerts

    with unit_of_work(ctx.app.extensions["lotsen_db"]) as db:
        alert = alerts.raise_alert(db, actor(db, "handlaggare"), alerts.MASS_LOOKUP)
        alert_id = alert.id
    return Attempt(
        login_browser(ctx.app, "granskare"),
        "/alerts/acknowledge",
        [("alert_id", str(alert_id))],
        lambda: ctx.scalar(
            select(SecurityAlert.acknowledged_at).where(SecurityAlert.id == alert_id)
        ),
    )


ROUTES = {
    ("protection.search", "POST"): _search,
    ("protection.break_glass_open", "POST"): _break_glass,
    ("protection.break_glass_end", "POST"): _break_glass_end,
    ("protection.alert_acknowledge", "POST"): _acknowledge,
}
