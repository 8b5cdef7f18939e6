"""Helpers for the retention tests (no tests here): closed cases from long ago, via the engine.

A case is run through a real scenario of ``bpmn/`` to its end with the engine's clock set back,
so its last entry lies years in the past, exactly as an old case would look.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import select

from engine import actions
from engine.db import clock, unit_of_work
from engine.models import Case, Decision
from tests.conftest import actor
from tests.engine.engine_testkit import approver_for, complete, newest_decision, start

BPMN = Path(__file__).resolve().parents[2] / "bpmn"
CLOSED_ADULT = BPMN / "identification" / "scenarios" / "06_not_substantiated_closed.json"
CHILDREN = BPMN / "child_safeguarding" / "scenarios"
CHILD_PLACED = CHILDREN / "02_voluntary_placement_violence_interventions.json"
CHILD_NOT_PLACED = CHILDREN / "07_close_with_follow_up_returned_once.json"


def luhn_pnr(birth: str, serial: str = "123") -> str:
    """A personnummer ``YYYYMMDD-NNNC`` with a valid check digit."""
    digits = birth[2:] + serial
    total = 0
    for i, ch in enumerate(digits):
        n = int(ch) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return f"{birth}-{serial}{(10 - total % 10) % 10}"


def run_scenario(
    app: Flask,
    path: Path,
    when: datetime,
    *,
    name: str = "Gallras Person",
    pnr: str | None = None,
    until_end: bool = True,
) -> int:
    """Start and run a scenario with the clock at ``when`` (a minute per step); return the id."""
    plan: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    procedure = path.parent.parent.name
    factory = app.extensions["lotsen_db"]
    moment = when.astimezone(UTC)
    clock.frozen = moment
    try:
        intake = {**plan["intake"], "subject_name": name}
        if pnr:
            intake["personnummer"] = pnr
        with unit_of_work(factory) as s:
            case_id = start(s, actor(s, "handlaggare"), intake, procedure=procedure).id
        for step in plan["steps"] if until_end else []:
            moment += timedelta(minutes=1)
            clock.frozen = moment
            if "advance" in step:
                continue
            with unit_of_work(factory) as s:
                if "complete" in step:
                    complete(s, case_id, step["complete"], step.get("data", {}))
                else:
                    approve = "approve" in step
                    kind = step["approve"] if approve else step["return"]
                    decision = newest_decision(s, case_id, kind, status="proposed")
                    actions.decide(
                        s,
                        approver_for(s, decision),
                        decision_id=decision.id,
                        approve=approve,
                        comment=step.get("comment"),
                    )
    finally:
        clock.frozen = None
    return case_id


def number_of(app: Flask, case_id: int) -> str:
    with app.extensions["lotsen_db"]() as s:
        return str(s.execute(select(Case.number).where(Case.id == case_id)).scalar_one())


def approved_types(app: Flask, case_id: int) -> set[str]:
    with app.extensions["lotsen_db"]() as s:
        rows = s.execute(
            select(Decision.decision_type).where(
                Decision.case_id == case_id, Decision.status == "approved"
            )
        )
        return set(rows.scalars())
