"""engine.access: who may open which case, every denial logged, and the case list agreeing
with the case page for every demo user."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_testkit import (
    BASIC_INTAKE,
    CONSULT_REQUEST,
    CONVERSATION,
    DEMO_USERNAMES,
    INDICATORS,
    SCREENING,
    app_on,
    complete_committed,
    factory,
    propose_assessment,
    run_to_assessment,
    start_committed,
)
from flask import Flask
from sqlalchemy import select

from engine import access
from engine.errors import NotFound
from engine.models import AuditEntry
from tests.conftest import actor


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The app on a fresh database (a copy of a prepared SQLite template)."""
    yield from app_on(database_url, tmp_path)


#: What each demo user may open, by case (see ``cases`` below for what each case is).
EXPECTED: dict[str, set[str]] = {
    # creator of every Vuxenenheten case: always on the team, protected or not
    "handlaggare": {"fresh", "approval", "protected", "dv", "coordinator"},
    # a caseworker of another unit: nothing here, only the Barn och unga case (creator)
    "handlaggare.barn": {"other_unit"},
    # municipality-wide domestic-violence team: only where it has an open task
    "kvinnofrid": {"dv"},
    # supervisor of the unit: every case of the unit except the protected one
    "arbetsledare": {"fresh", "approval", "dv", "coordinator"},
    "arbetsledare.barn": {"other_unit"},
    # unit manager of both units: every unprotected case of both
    "enhetschef": {"fresh", "approval", "dv", "coordinator", "other_unit"},
    # municipality-wide coordinator: where a consultation waits for them, and where they
    # gave one (A5 on the way to the approval case made them a team member)
    "samordnare": {"coordinator", "approval"},
    # the committee chair: only where an LVU decision waits for them (none here)
    "ordforande": set(),
    "huge": set(),
    "processagare": set(),
    "processagare2": set(),
    "granskare": set(),
    "admin": set(),
}


@pytest.fixture
def cases(app: Flask) -> dict[str, int]:
    """Cases in different states (each step its own transaction)."""
    ids = {"fresh": start_committed(app)}
    ids["approval"] = start_committed(app)
    run_to_assessment(app, ids["approval"])
    propose_assessment(app, ids["approval"])
    ids["protected"] = start_committed(
        app, intake={**BASIC_INTAKE, "protected_identity_type": "sekretessmarkering"}
    )
    ids["dv"] = start_committed(app)
    complete_committed(
        app, ids["dv"], "task_screen_acute", {**SCREENING, "exploitation_forms": ["sexual"]}
    )
    ids["coordinator"] = start_committed(app)
    for bpmn_id, data in (
        ("task_screen_acute", SCREENING),
        ("task_hold_conversation", CONVERSATION),
        ("task_assess_indicators", INDICATORS),
        ("task_request_consultation", CONSULT_REQUEST),
    ):
        complete_committed(app, ids["coordinator"], bpmn_id, data)
    with factory(app)() as s:
        from engine_testkit import start

        from tests.conftest import unit_id

        ids["other_unit"] = start(
            s, actor(s, "handlaggare.barn"), unit=unit_id(s, "barn_och_unga")
        ).id
        s.commit()
    return ids


def test_demo_users_are_all_covered() -> None:
    assert set(EXPECTED) == set(DEMO_USERNAMES)


def test_access_matrix_and_audit(app: Flask, cases: dict[str, int]) -> None:
    label_of = {case_id: label for label, case_id in cases.items()}
    wrong = []
    for username in DEMO_USERNAMES:
        for label, case_id in cases.items():
            with factory(app)() as s:
                who = actor(s, username)
                try:
                    access.access_case(s, who, case_id, purpose="test")
                    allowed = True
                except NotFound:
                    allowed = False
                s.commit()  # as the web layer does: the log entry stays
                entries = list(
                    s.execute(
                        select(AuditEntry)
                        .where(AuditEntry.actor_id == who.user_id)
                        .order_by(AuditEntry.seq.desc())
                        .limit(1)
                    ).scalars()
                )
            if allowed != (label in EXPECTED[username]):
                wrong.append(f"{username} {'saw' if allowed else 'was denied'} {label}")
            (entry,) = entries
            assert entry.case_id == case_id
            if allowed:
                assert (entry.action, entry.outcome) == ("case:viewed", "allowed")
                assert entry.purpose and entry.purpose.startswith("test (")
            else:
                assert (entry.action, entry.outcome) == ("case:denied", "denied")
                assert entry.object_id == str(case_id)
                assert entry.actor_name == username
    assert not wrong, "\n".join(wrong)

    with factory(app)() as s:
        for username in DEMO_USERNAMES:
            visible = {label_of[i] for i in access.visible_case_ids(s, actor(s, username))}
            assert visible == EXPECTED[username], username


def test_every_denial_is_logged_once(app: Flask, cases: dict[str, int]) -> None:
    denials = 0
    for username in DEMO_USERNAMES:
        with factory(app)() as s:
            for case_id in cases.values():
                try:
                    access.access_case(s, actor(s, username), case_id)
                except NotFound:
                    denials += 1
            s.commit()
    with factory(app)() as s:
        logged = (
            s.execute(select(AuditEntry).where(AuditEntry.action == "case:denied")).scalars().all()
        )
    assert len(logged) == denials == sum(len(cases) - len(allowed) for allowed in EXPECTED.values())


def test_missing_case_looks_like_a_forbidden_one(app: Flask, cases: dict[str, int]) -> None:
    with factory(app)() as s:
        who = actor(s, "arbetsledare.barn")
        with pytest.raises(NotFound) as missing:
            access.access_case(s, who, 999_999)
        with pytest.raises(NotFound) as hidden:
            access.access_case(s, who, cases["fresh"])
        assert str(missing.value) == str(hidden.value)
        s.commit()
        denied = (
            s.execute(
                select(AuditEntry)
                .where(AuditEntry.action == "case:denied")
                .order_by(AuditEntry.seq)
            )
            .scalars()
            .all()
        )
        assert [(d.object_id, d.case_id) for d in denied] == [
            ("999999", None),
            (str(cases["fresh"]), cases["fresh"]),
        ]


def test_unknown_task_and_decision_are_denied_and_logged(app: Flask) -> None:
    with factory(app)() as s:
        who = actor(s, "handlaggare")
        with pytest.raises(NotFound):
            access.access_task(s, who, "no-such-task")
        with pytest.raises(NotFound):
            access.access_decision(s, who, 424242)
        with pytest.raises(NotFound):
            access.access_document(s, who, 424242)
        s.commit()
        actions = (
            s.execute(
                select(AuditEntry.action)
                .where(AuditEntry.outcome == "denied")
                .order_by(AuditEntry.seq)
            )
            .scalars()
            .all()
        )
        assert actions == ["task:denied", "decision:denied", "document:denied"]


def test_coordinator_keeps_access_after_working_the_case(app: Flask, cases: dict[str, int]) -> None:
    """Once a person has worked a task they are on the case team (access by membership)."""
    case_id = cases["coordinator"]
    complete_committed(app, case_id, "task_record_consultation", {"consultation_note": "Klart."})
    with factory(app)() as s:
        who = actor(s, "samordnare")
        access.access_case(s, who, case_id, purpose="follow-up")
        s.flush()
        entry = s.execute(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).scalar_one()
        assert entry.purpose == "follow-up (member)"
        assert case_id in access.visible_case_ids(s, who)
