"""engine.intake: routing, the triage queue per unit, duplicates, triage once, the child clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import actions, intake, triage, triage_prefill
from engine.audit import Actor
from engine.db import clock
from engine.errors import Conflict, Forbidden, NotFound, ValidationFailed
from engine.models import AuditEntry, Case, JournalNote, OpenTask, Unit
from engine.models.intake import IntakeReport
from engine.processes import latest_published, model_for
from forms import load_form_spec, validate_data
from tests.conftest import actor

PNR = "201403021023"  # 2014-03-02, valid Luhn digit
PUBLIC = Actor(user_id=None, username="anonymous", source_ip="192.0.2.1")


@pytest.fixture(autouse=True)
def _thaw() -> Iterator[None]:
    yield
    clock.frozen = None


def _content(**extra: Any) -> dict[str, Any]:
    return {
        "concern": "Ett barn tigger vid Flemingsbergs station under skoltid.",
        "subject_name": "Ana Pop",
        "subject_birth_date": "2014-03-02",
        "place": "Flemingsbergs station",
        **extra,
    }


def _receive(db: Session, kind: str = "child", **extra: Any) -> IntakeReport:
    report = intake.receive_report(
        db, PUBLIC, kind=kind, content=_content(**extra), channel="public"
    )
    db.commit()
    return report


def _unit(db: Session, key: str) -> int:
    return int(db.execute(select(Unit.id).where(Unit.key == key)).scalar_one())


def _valid_start_data(db: Session, report_id: int, who: Actor, procedure: str) -> dict[str, Any]:
    """The prefill completed with what a person adds on the start form, validated like it."""
    version = latest_published(db, procedure)
    spec = load_form_spec(version.forms[model_for(version).start_form_key])
    data = triage_prefill.prefill(db, report_id, who, procedure)
    if procedure == "child_safeguarding":
        data |= {
            "child_gender": "girl",
            "child_protected_identity_type": "none",
            "child_whereabouts": data.get("child_whereabouts") or "Okänt",
            "reporter_role": data.get("reporter_role") or "unknown",
        }
    clean, errors = validate_data(spec, data, "sv")
    assert not errors, errors
    return clean


def test_reports_are_routed_by_kind_and_seen_only_by_their_units_intake(db: Session) -> None:
    child = _receive(db, "child")
    adult = _receive(db, "adult")
    assert child.unit_id == _unit(db, "barn_och_unga")
    assert adult.unit_id == _unit(db, "vuxenenheten")
    assert child.receipt != adult.receipt and str(child.id) not in child.receipt
    barn, vuxen = actor(db, "mottagning.barn"), actor(db, "mottagning")
    assert [r.id for r in triage.queue(db, barn)] == [child.id]
    assert [r.id for r in triage.queue(db, vuxen)] == [adult.id]
    with pytest.raises(NotFound):
        triage.view_report(db, vuxen, child.id)
    with pytest.raises(Forbidden):
        triage.queue(db, actor(db, "handlaggare.barn"))
    with pytest.raises(NotFound):
        triage.view_report(db, actor(db, "handlaggare.barn"), child.id)
    assert triage.view_report(db, barn, child.id).content["concern"].startswith("Ett barn")
    db.commit()
    actions_logged = set(db.execute(select(AuditEntry.action)).scalars())
    assert {
        "intake_report:received",
        "intake_report:viewed",
        "intake_report:denied",
    } <= actions_logged


def test_content_is_encrypted_at_rest(db: Session) -> None:
    report = _receive(db, "child", subject_personnummer=PNR)
    raw = (
        db.connection()
        .exec_driver_sql(
            "SELECT content, personnummer_index FROM intake_reports WHERE id = ?"
            if db.bind.dialect.name == "sqlite"  # type: ignore[union-attr]
            else "SELECT content, personnummer_index FROM intake_reports WHERE id = %s",
            (report.id,),
        )
        .one()
    )
    assert "Ana" not in raw[0] and "tigger" not in raw[0] and PNR not in raw[0]
    assert raw[1] and PNR not in raw[1]


def test_anonymous_report_keeps_no_reporter_identity(db: Session) -> None:
    report = _receive(
        db,
        "adult",
        anonymous=True,
        reporter_name="Kalle",
        reporter_contact="070-1",
        feedback_requested=True,
    )
    assert report.content["reporter_name"] is None and report.content["reporter_contact"] is None
    assert report.feedback_requested is False


def test_content_limits_and_shape_are_enforced(db: Session) -> None:
    with pytest.raises(ValidationFailed) as too_long:
        intake.receive_report(
            db, PUBLIC, kind="child", content=_content(concern="x" * 5001), channel="public"
        )
    assert "concern" in too_long.value.field_errors
    with pytest.raises(ValidationFailed):
        intake.receive_report(db, PUBLIC, kind="pet", content=_content(), channel="public")
    with pytest.raises(ValidationFailed):
        intake.receive_report(
            db, PUBLIC, kind="child", content=_content(concern=""), channel="public"
        )


def test_earlier_case_found_by_personnummer_and_by_name_and_birth_date(db: Session) -> None:
    caseworker = actor(db, "handlaggare")
    version = latest_published(db, "identification")
    spec = load_form_spec(version.forms[model_for(version).start_form_key])
    base = {
        **spec.empty_data(),
        "contact_datetime": "2026-11-01T10:00",
        "referral_source": "police",
        "contact_channel": "phone",
        "contact_place": "street",
        "identity_status": "known",
        "gender": "woman",
        "citizenship": "RO",
        "identity_documents": "unknown",
        "protected_identity_type": "none",
        "residence_status": "unknown",
        "resides_in_huddinge": "unknown",
    }
    by_pnr = actions.start_case(
        db,
        caseworker,
        procedure="identification",
        unit_id=_unit(db, "vuxenenheten"),
        intake={**base, "subject_name": "Maria Ionescu", "personnummer": "198112189876"},
        subject_fields=spec.subject_fields,
    )
    by_name = actions.start_case(
        db,
        caseworker,
        procedure="identification",
        unit_id=_unit(db, "vuxenenheten"),
        intake={**base, "subject_name": "Elena  Dragomir", "birth_date": "1999-05-04"},
        subject_fields=spec.subject_fields,
    )
    other = actions.start_case(
        db,
        caseworker,
        procedure="identification",
        unit_id=_unit(db, "vuxenenheten"),
        intake={**base, "subject_name": "Elena Dragomir", "birth_date": "1999-05-05"},
        subject_fields=spec.subject_fields,
    )
    db.commit()
    vuxen = actor(db, "mottagning")
    first = _receive(db, "adult", subject_name="M. I.", subject_personnummer="198112189876")
    second = _receive(db, "adult", subject_name="elena dragomir", subject_birth_date="1999-05-04")
    third = _receive(db, "adult", subject_name="Någon Annan", subject_birth_date="1999-05-04")
    found = triage.find_earlier_cases(db, vuxen, first.id)
    assert [(m.case_id, m.match) for m in found] == [(by_pnr.id, "personnummer")]
    found = triage.find_earlier_cases(db, vuxen, second.id)
    assert [(m.case_id, m.match) for m in found] == [(by_name.id, "name_birth_date")]
    assert other.id not in [m.case_id for m in found]
    assert triage.find_earlier_cases(db, vuxen, third.id) == []

    # link instead of duplicating: no new case, the report lands in the earlier case's journal
    cases_before = len(db.execute(select(Case.id)).all())
    triage.link_to_case(db, vuxen, first.id, case_id=by_pnr.id)
    db.commit()
    assert len(db.execute(select(Case.id)).all()) == cases_before
    note = (
        db.execute(
            select(JournalNote)
            .where(JournalNote.case_id == by_pnr.id, JournalNote.kind == "intake")
            .order_by(JournalNote.id.desc())
        )
        .scalars()
        .first()
    )
    assert note is not None and first.receipt in note.title and "Oro:" in (note.text or "")
    db.refresh(first)
    assert (first.status, first.case_id) == ("linked", by_pnr.id)
    # a case the duplicate check did not find cannot be chosen
    with pytest.raises(ValidationFailed):
        triage.link_to_case(db, vuxen, third.id, case_id=by_pnr.id)


def test_a_report_is_triaged_once(db: Session) -> None:
    report = _receive(db, "adult")
    vuxen = actor(db, "mottagning")
    with pytest.raises(ValidationFailed):
        triage.close_without_action(db, vuxen, report.id, reason="kort")
    db.rollback()
    triage.close_without_action(db, vuxen, report.id, reason="Uppgifterna gäller en annan kommun.")
    db.commit()
    with pytest.raises(Conflict):
        triage.close_without_action(db, vuxen, report.id, reason="En andra bedömning av samma.")
    db.rollback()
    with pytest.raises(Conflict):
        triage.start_from_report(
            db, vuxen, report.id, procedure="identification", intake={}, subject_fields={}
        )
    db.rollback()
    # a stale version (the page was loaded before somebody else changed it) is a conflict too
    fresh = _receive(db, "adult")
    with pytest.raises(Conflict):
        triage.close_without_action(
            db, vuxen, fresh.id, reason="Uppgifterna gäller en annan kommun.", expected_version=99
        )


def test_child_report_clock_runs_from_receipt_not_from_triage(app: Flask, db: Session) -> None:
    received = datetime(2026, 11, 24, 8, 30, tzinfo=UTC)
    clock.frozen = received
    report = _receive(db, "child", subject_personnummer=PNR)
    clock.frozen = received + timedelta(hours=7)  # triaged late in the afternoon
    barn = actor(db, "mottagning.barn")
    (row,) = triage.queue(db, barn)
    assert row.assessment_due_at == received + timedelta(hours=24) and not row.overdue
    clock.frozen = received + timedelta(hours=25)
    assert triage.queue(db, barn)[0].overdue
    clock.frozen = received + timedelta(hours=7)
    with app.test_request_context():
        data = _valid_start_data(db, report.id, barn, "child_safeguarding")
    assert data["child_name"] == "Ana Pop" and data["concern_description"].startswith("Ett barn")
    case = triage.start_from_report(
        db,
        barn,
        report.id,
        procedure="child_safeguarding",
        intake=data,
        subject_fields=load_form_spec(
            latest_published(db, "child_safeguarding").forms["child_safeguarding_intake"]
        ).subject_fields,
    )
    db.commit()
    assert case.received_at == received
    assert case.unit_id == _unit(db, "barn_och_unga")
    task = db.execute(
        select(OpenTask).where(
            OpenTask.case_id == case.id, OpenTask.bpmn_id == "task_assess_immediate_protection"
        )
    ).scalar_one()
    assert task.due_at == received + timedelta(hours=24)
    assert task.role == "caseworker"
    subject = case.subjects[0]
    assert subject.personnummer == PNR and subject.personnummer_index == report.personnummer_index
    db.refresh(report)
    assert (report.status, report.case_id) == ("started", case.id)
    # the adult unit's procedures cannot be started from a child report
    other = _receive(db, "child")
    with pytest.raises(ValidationFailed):
        triage.start_from_report(
            db, barn, other.id, procedure="identification", intake={}, subject_fields={}
        )


def test_intake_role_does_not_let_anyone_register_other_cases(db: Session) -> None:
    """The intake role starts cases only through triage: plain registration stays with
    caseworkers."""
    with pytest.raises(Forbidden):
        actions.start_case(
            db,
            actor(db, "mottagning"),
            procedure="identification",
            unit_id=_unit(db, "vuxenenheten"),
            intake={},
        )


def test_rate_counter_is_shared_and_windowed(db: Session) -> None:
    policy = intake.RatePolicy(limit=2, window=timedelta(minutes=10))
    now = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    assert intake.throttle_retry_after(db, "198.51.100.7", now, policy) is None
    intake.count_submission(db, "198.51.100.7", now, policy)
    intake.count_submission(db, "198.51.100.7", now, policy)
    db.commit()
    assert (
        intake.throttle_retry_after(db, "198.51.100.7", now + timedelta(minutes=1), policy) == 540
    )
    assert intake.throttle_retry_after(db, "198.51.100.8", now, policy) is None
    assert (
        intake.throttle_retry_after(db, "198.51.100.7", now + timedelta(minutes=10), policy) is None
    )


def test_a_case_of_another_unit_is_shown_but_not_linked(db: Session) -> None:
    caseworker = actor(db, "handlaggare")
    version = latest_published(db, "identification")
    spec = load_form_spec(version.forms[model_for(version).start_form_key])
    adult_case = actions.start_case(
        db,
        caseworker,
        procedure="identification",
        unit_id=_unit(db, "vuxenenheten"),
        intake={**spec.empty_data(), "subject_name": "Ana Pop", "personnummer": PNR},
        subject_fields=spec.subject_fields,
    )
    db.commit()
    report = _receive(db, "child", subject_personnummer=PNR)
    barn = actor(db, "mottagning.barn")
    (match,) = triage.find_earlier_cases(db, barn, report.id)
    assert match.case_id == adult_case.id and match.unit_id != report.unit_id
    with pytest.raises(ValidationFailed):
        triage.link_to_case(db, barn, report.id, case_id=adult_case.id)
    db.rollback()
    titles = db.execute(select(JournalNote.title).where(JournalNote.case_id == adult_case.id))
    assert not any(report.receipt in t for t in titles.scalars())


def test_two_triagers_at_the_same_moment_one_wins(app: Flask) -> None:
    """Two intake workers close the same report concurrently: one succeeds, one gets a Conflict
    (row lock on PostgreSQL, the write lock on SQLite), never two outcomes."""
    import threading

    from engine.db import unit_of_work

    factory = app.extensions["lotsen_db"]
    with unit_of_work(factory) as db:
        report_id = intake.receive_report(
            db, PUBLIC, kind="adult", content=_content(), channel="public"
        ).id
        who = actor(db, "mottagning")
    barrier = threading.Barrier(2)
    results: list[str] = []

    def attempt(reason: str) -> None:
        barrier.wait()
        try:
            with unit_of_work(factory) as db:
                triage.close_without_action(db, who, report_id, reason=reason, expected_version=1)
            results.append("done")
        except Conflict:
            results.append("conflict")

    threads = [
        threading.Thread(target=attempt, args=(f"Ingen åtgärd, bedömare {n}.",)) for n in (1, 2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == ["conflict", "done"]
