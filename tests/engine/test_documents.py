"""Outgoing documents (engine/documents.py): which exist when, what they may disclose, the
guardian notice refused for a suspected guardian, the disclosure gate re-checked, and the
unit manager's approval of documents about a person with a protected identity."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from engine import actions, documents, housing_inbox
from engine.db import unit_of_work
from engine.documents import Unavailable
from engine.errors import Conflict, Forbidden, NotFound
from engine.models import Case, CaseLink, CaseMember, Consent, Decision
from tests.conftest import actor
from tests.engine.engine_testkit import BPMN_DIR, app_on, audit_count, factory, run_scenario

CHILD = BPMN_DIR / "child_safeguarding" / "scenarios"
HOUSING = BPMN_DIR / "housing_notification" / "scenarios"
IDENT = BPMN_DIR / "identification" / "scenarios"
VICTIM = BPMN_DIR / "victim_support" / "scenarios"
PDF = b"%PDF-1.7 test bytes"


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    yield from app_on(database_url, tmp_path)


def _variant(tmp_path: Path, source: Path, change: Any) -> Path:
    """A copy of a scenario with ``change(scenario)`` applied (same procedure folder name)."""
    scenario = json.loads(source.read_text(encoding="utf-8"))
    change(scenario)
    target = tmp_path / source.parent.parent.name / "scenarios" / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(scenario), encoding="utf-8")
    return target


def _protected(scenario: dict[str, Any]) -> None:
    for key in ("protected_identity_type", "child_protected_identity_type"):
        if key in scenario["intake"]:
            scenario["intake"][key] = "skyddad_folkbokforing"
    scenario["intake"]["child_whereabouts"] = "Hemliga gatan 7, Huddinge"


def _member(app: Flask, case_id: int, username: str) -> None:
    with unit_of_work(factory(app)) as s:
        who = actor(s, username)
        if not s.execute(
            select(CaseMember).where(
                CaseMember.case_id == case_id, CaseMember.user_id == who.user_id
            )
        ).first():
            s.add(CaseMember(case_id=case_id, user_id=who.user_id, reason="test"))


def _kinds(app: Flask, case_id: int, username: str) -> dict[str, str]:
    with unit_of_work(factory(app)) as s:
        return {
            st.info.kind: ("" if st.available else st.reason)
            for st in documents.kinds_for(s, actor(s, username), case_id)
        }


def test_guardian_notice_refused_when_a_guardian_is_suspected(app: Flask) -> None:
    suspect = run_scenario(app, CHILD / "03_lvu6_committee_guardian_suspect_apply_care.json")
    clear = run_scenario(app, CHILD / "02_voluntary_placement_violence_interventions.json")
    for case_id in (suspect, clear):
        _member(app, case_id, "handlaggare.barn")
    with unit_of_work(factory(app)) as s:
        who = actor(s, "handlaggare.barn")
        with pytest.raises(Unavailable) as refused:
            documents.gather(s, who, case_id=suspect, kind="guardian_notice")
        assert refused.value.code == "guardian_suspected"
        letter = documents.gather(s, who, case_id=clear, kind="guardian_notice")
        assert letter.facts["recipients"]
        assert letter.legal_refs and letter.legal_refs[0].key == "INVESTIGATION"
    kinds = _kinds(app, suspect, "handlaggare.barn")
    assert kinds["lvu6_decision"] == "" and kinds["lvu_care_application"] == ""
    assert _kinds(app, clear, "handlaggare.barn")["lvu_care_application"] == "not_reached"


def test_kinds_follow_the_procedure_and_its_progress(app: Flask) -> None:
    case_id = run_scenario(app, CHILD / "01_linked_from_identification_no_need_not_opened.json")
    _member(app, case_id, "handlaggare.barn")
    kinds = _kinds(app, case_id, "handlaggare.barn")
    assert set(kinds) == {
        "protection_assessment",
        "lvu6_decision",
        "lvu_care_application",
        "guardian_notice",
        "police_report",
        "reporter_feedback",
        "closure_note",
    }
    assert kinds["protection_assessment"] == ""
    assert kinds["lvu6_decision"] == "not_reached"
    assert kinds["reporter_feedback"] == "no_feedback_requested"
    with unit_of_work(factory(app)) as s, pytest.raises(Unavailable):
        documents.gather(s, actor(s, "handlaggare.barn"), case_id=case_id, kind="housing_notice")


def test_housing_notice_holds_property_facts_only(app: Flask) -> None:
    case_id = run_scenario(app, HOUSING / "03_consent_based_child_found.json")
    with unit_of_work(factory(app)) as s:
        letter = documents.gather(s, actor(s, "samordnare"), case_id=case_id, kind="housing_notice")
        assert set(letter.facts) <= set(documents.HOUSING_LETTER_KEYS)
        assert letter.facts["address"]
        assert letter.subject_label == ""
        assert {r.key for r in letter.legal_refs} == {"PIMPING", "LEASE_FORFEITURE"}
        assert letter.recipient == "Huge Fastigheter AB"
    none = run_scenario(app, HOUSING / "02_police_only_adult_found.json")
    assert _kinds(app, none, "samordnare")["housing_notice"] == "route_without_letter"


def test_police_report_rechecks_the_disclosure_gate(app: Flask, tmp_path: Path) -> None:
    def by_consent(scenario: dict[str, Any]) -> None:
        for step in scenario["steps"]:
            data = step.get("data", {})
            if step.get("complete") == "task_assess_indicators":
                data["consents_given"] = ["CONSENT_POLICE_REPORT"]
            if step.get("complete") == "task_propose_police_report":
                data["police_legal_ground"] = "consent"

    path = _variant(tmp_path, IDENT / "01_presumed_trafficking_begging_reported.json", by_consent)
    case_id = run_scenario(app, path)
    with unit_of_work(factory(app)) as s:
        letter = documents.gather(s, actor(s, "handlaggare"), case_id=case_id, kind="police_report")
        assert "CONSENT_LIFTS_SECRECY" in {r.key for r in letter.legal_refs}
        consent = s.execute(select(Consent).where(Consent.case_id == case_id)).scalar_one()
        actions.withdraw_consent(s, actor(s, "handlaggare"), consent_id=consent.id)
    assert _kinds(app, case_id, "handlaggare")["police_report"] == "disclosure_gate"
    not_reported = run_scenario(app, IDENT / "02_presumed_exploitation_consent_refused.json")
    assert _kinds(app, not_reported, "handlaggare")["police_report"] == "not_reported"


def test_referral_is_consent_gated(app: Flask, tmp_path: Path) -> None:
    case_id = run_scenario(app, IDENT / "02_presumed_exploitation_consent_refused.json")
    with unit_of_work(factory(app)) as s:
        worker = actor(s, "handlaggare")
        letter = documents.gather(s, worker, case_id=case_id, kind="referral")
        assert letter.facts["with_identity"] == "yes" and letter.facts["name"]
        consent = s.execute(
            select(Consent).where(
                Consent.case_id == case_id, Consent.purpose == "CONSENT_SHARE_ORG"
            )
        ).scalar_one()
        actions.withdraw_consent(s, worker, consent_id=consent.id)
    assert _kinds(app, case_id, "handlaggare")["referral"] == "no_consent"

    def anonymous(scenario: dict[str, Any]) -> None:
        for step in scenario["steps"]:
            if step.get("complete") == "task_propose_further_handling":
                step["data"]["referral_basis"] = "without_personal_data"
            if step.get("complete") == "task_assess_indicators":
                step["data"]["consents_given"] = []

    path = _variant(tmp_path, IDENT / "04_prostitution_no_indicators_dv.json", anonymous)
    other = run_scenario(app, path)
    with unit_of_work(factory(app)) as s:
        letter = documents.gather(s, actor(s, "handlaggare"), case_id=other, kind="referral")
        assert "with_identity" not in letter.facts
        assert "name" not in letter.facts and "reasons" not in letter.facts


def test_protected_identity_needs_unit_manager_approval(app: Flask, tmp_path: Path) -> None:
    path = _variant(tmp_path, IDENT / "01_presumed_trafficking_begging_reported.json", _protected)
    case_id = run_scenario(app, path)
    with unit_of_work(factory(app)) as s:
        worker = actor(s, "handlaggare")
        letter = documents.gather(s, worker, case_id=case_id, kind="police_report")
        assert letter.needs_approval and letter.protected
        assert letter.subject_label == "Skyddad identitet"
        assert "Hemliga gatan" not in json.dumps(dict(letter.facts), ensure_ascii=False)
        doc = documents.store_outgoing(
            s, worker, letter=letter, case_id=case_id, filename="p.pdf", content=PDF
        )
        doc_id = doc.id
        assert doc.status == "awaiting_approval" and bytes(doc.content) == b""
        with pytest.raises(Forbidden):
            documents.document_bytes(s, worker, document_id=doc_id)
    # the supervisor may not approve, nor see the protected case at all
    with unit_of_work(factory(app)) as s, pytest.raises((Forbidden, NotFound)):
        documents.approve_document(s, actor(s, "arbetsledare"), document_id=doc_id)
    with unit_of_work(factory(app)) as s:
        chief = actor(s, "enhetschef")
        _, draft = documents.document_bytes(s, chief, document_id=doc_id)
        assert draft == PDF
        assert [p[2].id for p in documents.pending_for(s, chief)] == [doc_id]
        approved = documents.approve_document(s, chief, document_id=doc_id, content=PDF + b"ok")
        assert approved.status == "approved" and approved.approved_by_id == chief.user_id
        with pytest.raises(Conflict):
            documents.approve_document(s, chief, document_id=doc_id)
    with unit_of_work(factory(app)) as s:
        _, data = documents.document_bytes(s, actor(s, "handlaggare"), document_id=doc_id)
        assert data == PDF + b"ok"
        assert audit_count(s, "document:approved", case_id) == 1
        assert audit_count(s, "document:previewed", case_id) == 1
        assert audit_count(s, "document:downloaded", case_id) == 1


def test_unit_manager_cannot_approve_own_document(app: Flask, tmp_path: Path) -> None:
    path = _variant(tmp_path, IDENT / "01_presumed_trafficking_begging_reported.json", _protected)
    case_id = run_scenario(app, path)
    _member(app, case_id, "enhetschef")
    with unit_of_work(factory(app)) as s:
        chief = actor(s, "enhetschef")
        letter = documents.gather(s, chief, case_id=case_id, kind="police_report")
        doc = documents.store_outgoing(
            s, chief, letter=letter, case_id=case_id, filename="p.pdf", content=PDF
        )
        with pytest.raises(Forbidden):
            documents.approve_document(s, chief, document_id=doc.id)


def test_internal_records_and_unprotected_letters_are_filed_final(app: Flask) -> None:
    case_id = run_scenario(app, IDENT / "01_presumed_trafficking_begging_reported.json")
    with unit_of_work(factory(app)) as s:
        worker = actor(s, "handlaggare")
        for kind in ("police_report", "closure_note"):
            letter = documents.gather(s, worker, case_id=case_id, kind=kind)
            assert not letter.needs_approval
            doc = documents.store_outgoing(
                s, worker, letter=letter, case_id=case_id, filename="x.pdf", content=PDF
            )
            assert doc.status == "final"
            assert documents.document_bytes(s, worker, document_id=doc.id)[1] == PDF


def test_appealable_decision_letter_of_protected_case_is_held(app: Flask, tmp_path: Path) -> None:
    path = _variant(
        tmp_path, VICTIM / "04_safety_plan_eu_citizen_intervention_rejected.json", _protected
    )
    case_id = run_scenario(app, path)
    with unit_of_work(factory(app)) as s:
        decision = (
            s.execute(
                select(Decision).where(Decision.case_id == case_id, Decision.appealable.is_(True))
            )
            .scalars()
            .first()
        )
        assert decision is not None
        doc = actions.store_decision_document(
            s, actor(s, "arbetsledare"), decision=decision, title="t", filename="b.pdf", content=PDF
        )
        assert doc.status == "awaiting_approval" and bytes(doc.content) == b""
        doc_id = doc.id
    with unit_of_work(factory(app)) as s, pytest.raises(Forbidden):
        documents.document_bytes(s, actor(s, "handlaggare"), document_id=doc_id)
    with unit_of_work(factory(app)) as s:
        released = documents.approve_document(s, actor(s, "enhetschef"), document_id=doc_id)
        assert released.status == "approved" and bytes(released.content) == PDF
        assert documents.document_bytes(s, actor(s, "handlaggare"), document_id=doc_id)[1] == PDF


def test_linked_case_is_received_when_the_report_came_in(app: Flask) -> None:
    case_id = run_scenario(app, IDENT / "05_other_vulnerability_child_best_interest.json")
    with unit_of_work(factory(app)) as s:
        link = s.execute(select(CaseLink).where(CaseLink.from_case_id == case_id)).scalars().first()
        assert link is not None
        child = s.get(Case, link.to_case_id)
        assert child is not None
        assert child.received_at == datetime.fromisoformat("2026-03-02T10:15:00+01:00")


def test_report_time_is_never_in_the_future() -> None:
    assert actions.report_time({"report_received_at": "2999-01-01T00:00:00+00:00"}) is not None
    future = actions.report_time({"report_received_at": "2999-01-01T00:00:00+00:00"})
    assert future is not None and future.year < 2999
    assert actions.report_time({"contact_datetime": "not a date"}) is None
    naive = actions.report_time({"support_requested_at": "2026-03-02T10:15:00"})
    assert naive == datetime.fromisoformat("2026-03-02T10:15:00+01:00")


def test_housing_contact_sees_its_notifications_without_personal_data(app: Flask) -> None:
    run_scenario(app, HOUSING / "03_consent_based_child_found.json")
    with unit_of_work(factory(app)) as s:
        notices = housing_inbox.housing_notifications(s, actor(s, "huge"))
        assert notices and all(n.address for n in notices)
        text = json.dumps([n.__dict__ for n in notices], default=str, ensure_ascii=False)
        for personal in ("persons_found", "children_count", "adults_count", "Barn"):
            assert personal not in text
        with pytest.raises(Forbidden):
            housing_inbox.housing_notifications(s, actor(s, "handlaggare"))
        assert audit_count(s, "housing:listed") == 1
