"""A user's notification opt-outs: which kinds of e-mail they do not want.

Reminders about a statutory deadline are sent regardless (see ``statutory``); the opt-out
still applies to every other deadline and to new-task messages.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from engine import audit
from engine.audit import Actor
from engine.errors import Forbidden
from engine.models.notifications import NotificationOptOut
from engine.notifications.content import Kind


def opt_outs(session: Session, user_id: int) -> frozenset[Kind]:
    """The kinds the user has switched off."""
    kinds = session.execute(
        select(NotificationOptOut.kind).where(NotificationOptOut.user_id == user_id)
    ).scalars()
    return frozenset(Kind(k) for k in kinds if k in Kind._value2member_map_)


def set_opt_outs(session: Session, actor: Actor, kinds: Iterable[Kind]) -> frozenset[Kind]:
    """Replace the actor's own opt-outs with ``kinds``; audited when anything changes."""
    if actor.user_id is None:
        raise Forbidden("only a logged-in user has notification settings")
    wanted = frozenset(Kind(k) for k in kinds)
    current = opt_outs(session, actor.user_id)
    if wanted == current:
        return current
    removed = current - wanted
    if removed:
        session.execute(
            delete(NotificationOptOut).where(
                NotificationOptOut.user_id == actor.user_id,
                NotificationOptOut.kind.in_([k.value for k in removed]),
            )
        )
    for kind in sorted(wanted - current):
        session.add(NotificationOptOut(user_id=actor.user_id, kind=kind.value))
    session.flush()
    audit.record(
        session,
        actor,
        "notification_preferences:changed",
        object_type="user",
        object_id=actor.user_id,
        details={"opted_out": sorted(k.value for k in wanted)},
    )
    return wanted
