"""Demo units and users (password ``demo``), loaded only when LOTSEN_DEMO=1. Idempotent."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.models import RoleAssignment, Unit, User
from engine.passwords import hash_password

DEMO_PASSWORD = "demo"  # noqa: S105 - demo mode only, refused in production

UNITS = {
    "vuxenenheten": "Vuxenenheten",
    "barn_och_unga": "Barn och unga",
}


@dataclass(frozen=True)
class DemoUser:
    """One demo account and its role assignments (role, unit key or None)."""

    username: str
    display_name: str
    roles: tuple[tuple[str, str | None], ...]


DEMO_USERS = (
    DemoUser("handlaggare", "Hanna Handläggare", (("caseworker", "vuxenenheten"),)),
    DemoUser("handlaggare.barn", "Bertil Barnhandläggare", (("caseworker", "barn_och_unga"),)),
    DemoUser("kvinnofrid", "Kim Kvinnofridsteamet", (("dv_team", None),)),
    DemoUser("arbetsledare", "Anna Arbetsledare", (("supervisor", "vuxenenheten"),)),
    DemoUser("arbetsledare.barn", "Ali Arbetsledare Barn", (("supervisor", "barn_och_unga"),)),
    DemoUser(
        "enhetschef",
        "Eva Enhetschef",
        (("unit_manager", "vuxenenheten"), ("unit_manager", "barn_och_unga")),
    ),
    DemoUser("mottagning", "Maja Mottagning", (("intake", "vuxenenheten"),)),
    DemoUser("mottagning.barn", "Mio Mottagning Barn", (("intake", "barn_och_unga"),)),
    DemoUser("samordnare", "Sam Samordnare", (("coordinator", None),)),
    DemoUser("ordforande", "Olga Ordförande (socialnämnden)", (("committee", None),)),
    DemoUser("huge", "Hugo Huge Fastigheter", (("housing_contact", None),)),
    DemoUser("polis", "Pia Polis (lokalpolisområde Huddinge)", (("partner", None),)),
    DemoUser("processagare", "Petra Processägare", (("process_owner", None),)),
    DemoUser("processagare2", "Per Processägare", (("process_owner", None),)),
    DemoUser("granskare", "Greta Granskare", (("auditor", None),)),
    DemoUser("admin", "Adam Admin", (("admin", None),)),
)


def load_demo_data(session: Session) -> int:
    """Create the demo units and users that do not exist yet; return how many users were added."""
    units = {}
    for key, name in UNITS.items():
        unit = session.execute(select(Unit).where(Unit.key == key)).scalar_one_or_none()
        if unit is None:
            unit = Unit(key=key, name=name)
            session.add(unit)
            session.flush()
        units[key] = unit
    password_hash = hash_password(DEMO_PASSWORD)
    added = 0
    for demo in DEMO_USERS:
        user = session.execute(
            select(User).where(User.username == demo.username)
        ).scalar_one_or_none()
        if user is not None:
            continue
        user = User(
            username=demo.username,
            display_name=demo.display_name,
            email=f"{demo.username}@example.org",
            password_hash=password_hash,
            active=True,
        )
        user.roles = [
            RoleAssignment(role=role, unit_id=units[unit].id if unit else None)
            for role, unit in demo.roles
        ]
        session.add(user)
        added += 1
    session.flush()
    from engine.partners import load_demo_partners  # the partner organisations of demo users

    load_demo_partners(session)
    return added
