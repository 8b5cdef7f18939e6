"""Route policies of issue 6 (public reports, partner intake, triage) for the route matrix.

Each unit's world gets one report waiting for triage, routed to that unit (a child report to
Barn och unga, an adult report to Vuxenenheten); only that unit's intake staff may open it.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from matrix_kit import EXTRA_GROUPS, POLICY, SNAPSHOT_MODELS, WORLD_HOOKS, Rule, UnitWorld
from sqlalchemy.orm import Session

from engine import intake
from engine.audit import Actor
from engine.models.intake import IntakeReport, PartnerOrganisation, PartnerToken

INTAKE_OF = {"vuxenenheten": "mottagning", "barn_och_unga": "mottagning.barn"}
KIND_OF = {"vuxenenheten": "adult", "barn_och_unga": "child"}

EXTRA_GROUPS["intake_staff"] = set(INTAKE_OF.values())
EXTRA_GROUPS["partner_users"] = {"polis"}
EXTRA_GROUPS["unit_intake"] = lambda w: {INTAKE_OF[w.unit]}
SNAPSHOT_MODELS.extend([IntakeReport, PartnerOrganisation, PartnerToken])


def _report_hook(app: Flask, db: Session, world: UnitWorld) -> dict[str, Any]:
    """A report of the unit, waiting for triage."""
    report = intake.receive_report(
        db,
        Actor(user_id=None, username="anonymous"),
        kind=KIND_OF[world.unit],
        content={"concern": "Route matrix: oro för en person.", "subject_name": "Matris"},
        channel="public",
    )
    db.commit()
    return {"intake_report": report.id}


WORLD_HOOKS.append(_report_hook)

REPORT = {"intake_report": "unit_intake"}

POLICY.update(
    {
        # the public e-service: anyone; an empty post fails validation (422), nothing stored
        ("public.report", "GET"): Rule("public"),
        ("public.report", "POST"): Rule(
            "public", body=lambda w: {}, harmless=True, allow=frozenset({422})
        ),
        ("public.receipt", "GET"): Rule("public"),
        # partner intake: only a partner's intake token; users' API tokens are refused (401)
        ("api.intake_referral", "POST"): Rule(
            "login", who="nobody", body=lambda w: {}, deny=frozenset({401})
        ),
        # triage: the unit's intake staff; empty posts fail validation after the access check
        ("intake.queue", "GET"): Rule("login", who="intake_staff"),
        # the logged-in partner form: staff of an active partner organisation
        ("intake.referral", "GET"): Rule("login", who="partner_users"),
        ("intake.referral", "POST"): Rule(
            "login", who="partner_users", body=lambda w: {}, harmless=True, allow=frozenset({422})
        ),
        ("intake.show", "GET"): Rule("object", objects=REPORT),
        ("intake.start", "GET"): Rule("object", objects=REPORT),
        ("intake.start", "POST"): Rule(
            "object", objects=REPORT, body=lambda w: {}, harmless=True, allow=frozenset({422})
        ),
        ("intake.close", "POST"): Rule(
            "object", objects=REPORT, body=lambda w: {}, harmless=True, allow=frozenset({422})
        ),
        ("intake.link", "POST"): Rule(
            "object", objects=REPORT, body=lambda w: {}, harmless=True, allow=frozenset({422})
        ),
    }
)
