"""CSRF probes of issue 6: the public report form and the triage forms."""

from __future__ import annotations

from typing import Any

from matrix_kit import anonymous_browser, login_browser
from sqlalchemy import func, select

from engine import intake
from engine.audit import Actor
from engine.db import unit_of_work
from engine.models.intake import IntakeReport


def _report(ctx: Any) -> int:
    """One adult report waiting in Vuxenenheten's queue (made once per probe)."""
    with unit_of_work(ctx.app.extensions["lotsen_db"]) as db:
        report = intake.receive_report(
            db,
            Actor(user_id=None, username="anonymous"),
            kind="adult",
            content={"concern": "CSRF-prov: oro för en person."},
            channel="public",
        )
        return report.id


def _status_of(ctx: Any, report_id: int) -> str:
    return str(ctx.scalar(select(IntakeReport.status).where(IntakeReport.id == report_id)))


def _intake_browser(ctx: Any) -> Any:
    if not hasattr(ctx, "intake_browser"):
        ctx.intake_browser = login_browser(ctx.app, "mottagning")
    return ctx.intake_browser


def _public_report(ctx: Any) -> Any:
    from test_csrf import Attempt

    visitor = anonymous_browser(ctx.app)
    form = [("kind", "adult"), ("concern", "En person verkar tvingas arbeta utan lön.")]
    return Attempt(
        visitor,
        "/anmalan",
        form,
        lambda: ctx.scalar(select(func.count()).select_from(IntakeReport)),
    )


def _close(ctx: Any) -> Any:
    from test_csrf import Attempt

    report_id = _report(ctx)
    form = [("reason", "Prövat av CSRF-testet; ingen åtgärd."), ("version", "1")]
    return Attempt(
        _intake_browser(ctx),
        f"/intake/reports/{report_id}/close",
        form,
        lambda: _status_of(ctx, report_id),
    )


def _link(ctx: Any) -> Any:
    from test_csrf import Attempt

    # no earlier case exists: with its token the post is refused past CSRF (422)
    report_id = _report(ctx)
    return Attempt(
        _intake_browser(ctx),
        f"/intake/reports/{report_id}/link",
        [("case_id", str(ctx.world.case_id)), ("version", "1")],
        lambda: _status_of(ctx, report_id),
        changes=False,
    )


def _start(ctx: Any) -> Any:
    from test_csrf import Attempt

    # an incomplete start form: past CSRF it fails validation (422), nothing is started
    report_id = _report(ctx)
    return Attempt(
        _intake_browser(ctx),
        f"/intake/reports/{report_id}/start?procedure=identification",
        [("version", "1")],
        lambda: _status_of(ctx, report_id),
        changes=False,
    )


def _referral(ctx: Any) -> Any:
    from test_csrf import Attempt

    if not hasattr(ctx, "partner_browser"):
        ctx.partner_browser = login_browser(ctx.app, "polis")
    form = [("kind", "child"), ("concern", "Polisen har träffat ett barn utan vårdnadshavare.")]
    return Attempt(
        ctx.partner_browser,
        "/intake/referral",
        form,
        lambda: ctx.scalar(select(func.count()).select_from(IntakeReport)),
    )


ROUTES = {
    ("public.report", "POST"): _public_report,
    ("intake.close", "POST"): _close,
    ("intake.link", "POST"): _link,
    ("intake.start", "POST"): _start,
    ("intake.referral", "POST"): _referral,
}
