"""Scenario files run against a version in a throwaway database, never the live one."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from ws_kit import BPMN_DIR, edited, procedure

from engine import workspace
from engine.models import AuditEntry, Case, ProcessInstance
from engine.processes import latest_published
from tests.conftest import actor

SCENARIOS = sorted(p.stem for p in (BPMN_DIR / "identification" / "scenarios").glob("*.json"))


def _live_counts(db: Session) -> tuple[int, int, int]:
    return tuple(  # type: ignore[return-value]
        int(db.execute(select(func.count()).select_from(m)).scalar_one())
        for m in (Case, ProcessInstance, AuditEntry)
    )


def test_published_procedure_passes_its_scenarios_without_touching_the_live_database(
    db: Session,
) -> None:
    version = latest_published(db, "identification")
    before = _live_counts(db)
    results = workspace.run_scenarios(db, version.id)
    assert [r.name for r in results] == SCENARIOS
    assert all(r.passed for r in results), [(r.name, r.message) for r in results if not r.passed]
    assert _live_counts(db) == before


def test_a_draft_that_changes_behaviour_fails_the_scenarios_it_breaks(db: Session) -> None:
    files = procedure("identification")
    # the checker accepts it, but children no longer start a child-safeguarding case
    xml = edited(
        "identification",
        ">children_involved</bpmn:conditionExpression>",
        ">children_involved and False</bpmn:conditionExpression>",
    )
    draft, check = workspace.save_draft(
        db, actor(db, "processagare"), bpmn_xml=xml, forms=files.forms
    )
    db.commit()
    assert check.ok
    results = {r.name: r for r in workspace.run_scenarios(db, draft.id)}
    failed = [name for name, r in results.items() if not r.passed]
    assert failed, "no scenario noticed that children are no longer reported"
    assert any(
        "linked" in results[name].message or "visited" in results[name].message for name in failed
    )
    assert len(failed) < len(results), "scenarios without children still pass"


def test_a_draft_the_checker_refused_is_not_run(db: Session) -> None:
    files = procedure("identification")
    broken = edited("identification", 'name="dv_team">', 'name="nobody">')
    draft, _ = workspace.save_draft(
        db, actor(db, "processagare"), bpmn_xml=broken, forms=files.forms
    )
    results = workspace.run_scenarios(db, draft.id)
    assert results and not any(r.passed for r in results)
    assert "fix them first" in results[0].message


def test_a_procedure_without_scenario_files_has_no_results(db: Session) -> None:
    version, _ = workspace.save_draft(
        db, actor(db, "processagare"), bpmn_xml="<x/>", forms={}, filename="other.bpmn"
    )
    assert workspace.run_scenarios(db, version.id) == []
