"""CSRF probes of the outgoing-document forms (issue 3): a forged post must neither file a
document in a case nor release one held for the unit manager."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine.models import Document


def _generate(ctx: Any) -> Any:
    from test_csrf import Attempt

    url = f"/documents/cases/{ctx.world.case_id}"
    # the arranged case has not reached a closure: with its own token the post is a 422
    return Attempt(
        ctx.caseworker, url, [("kind", "closure_note")], lambda: ctx.count(Document), changes=False
    )


def _approve(ctx: Any) -> Any:
    from test_csrf import Attempt

    url = f"/documents/{ctx.world.document}/approve"
    status = select(Document.status).where(Document.id == ctx.world.document)
    # the supervisor may not approve documents: past the CSRF check the post is a 403
    return Attempt(ctx.supervisor, url, [], lambda: ctx.scalar(status), changes=False)


ROUTES = {
    ("documents.generate", "POST"): _generate,
    ("documents.approve", "POST"): _approve,
}
