"""Personal data at rest: encrypted in the database (file bytes and raw column text), still
readable after a key rotation, and looked up by a keyed blind index."""

from __future__ import annotations

import base64
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from engine_testkit import (
    BASIC_INTAKE,
    INDICATORS,
    SCREENING,
    app_on,
    complete_committed,
    factory,
    instance_of,
    newest_decision,
    open_task,
    propose_assessment,
    run_to_assessment,
    start_committed,
)
from flask import Flask
from sqlalchemy import select, text

from engine import actions, crypto
from engine.actions import runtime
from engine.db import Base
from engine.models import Case, Subject
from tests.conftest import actor

CIPHERTEXT = re.compile(r"^[0-9a-f]{8}\.[A-Za-z0-9_-]+=*$")


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The app on a fresh database; the data key is restored after each test."""
    yield from app_on(database_url, tmp_path)


@pytest.fixture
def app_key(app: Flask) -> Iterator[bytes]:
    """The app's data key; whatever a test configures, this key is active again afterwards."""
    key: bytes = app.extensions["lotsen"].data_key
    yield key
    crypto.configure(key)


@pytest.fixture
def canary() -> str:
    return f"Kanariefågel-{uuid.uuid4().hex[:12]}"


def _case_full_of_canaries(app: Flask, canary: str) -> int:
    """A case with the canary in the subject's name, the intake, a task's free text, a
    draft, a decision's reasons and a return comment."""
    intake = {
        **BASIC_INTAKE,
        "subject_name": canary,
        "personnummer": "19900101-1234",
        "contact_place_details": f"Plats {canary}",
    }
    case_id = start_committed(app, intake=intake)
    complete_committed(
        app, case_id, "task_screen_acute", {**SCREENING, "journal_note": f"Anteckning {canary}"}
    )
    complete_committed(app, case_id, "task_hold_conversation", {})
    with factory(app)() as s:
        task_id = open_task(s, case_id, "task_assess_indicators").id
        actions.save_draft(
            s, actor(s, "handlaggare"), task_id=task_id, data={"own_account": f"Utkast {canary}"}
        )
        s.commit()
    complete_committed(
        app,
        case_id,
        "task_assess_indicators",
        {**INDICATORS, "own_account": f"Berättelse {canary}"},
    )
    complete_committed(app, case_id, "task_request_consultation", {})
    complete_committed(app, case_id, "task_record_consultation", {})
    propose = {
        "assessment_outcome": "PRESUMED_EXPLOITATION_4_1B",
        "assessment_reasons": f"Skäl {canary}",
    }
    complete_committed(app, case_id, "task_propose_assessment", propose)
    with factory(app)() as s:
        decision = newest_decision(s, case_id, "D-A6")
        actions.decide(
            s,
            actor(s, "arbetsledare"),
            decision_id=decision.id,
            approve=False,
            comment=f"Återvisas {canary}",
        )
        s.commit()
    return case_id


def test_no_personal_data_in_the_sqlite_file(
    database_url: str, request: pytest.FixtureRequest, canary: str, tmp_path: Path
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("reads the SQLite file")
    app: Flask = request.getfixturevalue("app")
    case_id = _case_full_of_canaries(app, canary)
    with factory(app)() as s:  # the ORM still reads it all back
        case = s.get(Case, case_id)
        assert case is not None and case.subjects[0].name == canary
        number = case.number
    app.extensions["lotsen_engine"].dispose()  # checkpoint the WAL into the main file
    files = [p for p in tmp_path.iterdir() if p.name.startswith("lotsen-test.db")]
    raw = b"".join(p.read_bytes() for p in files)
    assert number.encode() in raw, "not the database the app wrote to"
    for needle in (canary, canary.encode("ascii", "ignore").decode(), "19900101-1234"):
        assert needle.encode("utf-8") not in raw, f"{needle!r} found in {files}"


def test_no_personal_data_in_any_postgres_row(
    database_url: str, request: pytest.FixtureRequest, canary: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("reads every PostgreSQL row as text")
    app: Flask = request.getfixturevalue("app")
    _case_full_of_canaries(app, canary)
    with app.extensions["lotsen_engine"].connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = conn.execute(text(f"SELECT t::text FROM {table.name} AS t")).scalars().all()
            for row in rows:
                assert canary not in row, f"canary in {table.name}"
                assert "19900101-1234" not in row, f"personnummer in {table.name}"


def test_raw_columns_hold_ciphertext(app: Flask, canary: str, app_key: bytes) -> None:
    case_id = _case_full_of_canaries(app, canary)
    with app.extensions["lotsen_engine"].connect() as conn:
        name, pnr, index = conn.execute(
            text("SELECT name, personnummer, personnummer_index FROM subjects WHERE case_id = :c"),
            {"c": case_id},
        ).one()
        state = conn.execute(
            text("SELECT state FROM process_instances WHERE case_id = :c"), {"c": case_id}
        ).scalar_one()
        reasons, comment = conn.execute(
            text("SELECT reasons, comment FROM decisions WHERE case_id = :c"), {"c": case_id}
        ).one()
        notes = (
            conn.execute(
                text("SELECT text FROM journal_notes WHERE case_id = :c AND text IS NOT NULL"),
                {"c": case_id},
            )
            .scalars()
            .all()
        )
    for value in (name, pnr, state, reasons, comment, *notes):
        assert CIPHERTEXT.match(value), value[:80]
        assert value.startswith(crypto.key_id(app_key) + ".")
    assert crypto.decrypt(name) == canary
    assert crypto.decrypt(pnr) == "19900101-1234"
    assert canary in crypto.decrypt(state)
    assert crypto.decrypt(comment) == f"Återvisas {canary}"
    assert any(canary in crypto.decrypt(n) for n in notes)
    assert index == crypto.blind_index("19900101-1234", purpose="personnummer")
    # The same plaintext encrypts differently each time (random nonce).
    assert crypto.encrypt(canary) != crypto.encrypt(canary)


def test_tampered_ciphertext_does_not_decrypt(app_key: bytes) -> None:
    token = crypto.encrypt("Lisa Lönn")
    kid, body = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(body))
    raw[len(raw) // 2] ^= 0x01
    flipped = base64.urlsafe_b64encode(bytes(raw)).decode()
    assert crypto.decrypt(token) == "Lisa Lönn"
    with pytest.raises(InvalidTag):
        crypto.decrypt(f"{kid}.{flipped}")
    with pytest.raises(InvalidTag):
        crypto.decrypt(token, context=b"another column")


def test_rotation_keeps_old_rows_readable(app: Flask, canary: str, app_key: bytes) -> None:
    intake = {**BASIC_INTAKE, "subject_name": canary}
    case_id = start_committed(app, intake=intake)
    with app.extensions["lotsen_engine"].connect() as conn:
        old_token = conn.execute(
            text("SELECT name FROM subjects WHERE case_id = :c"), {"c": case_id}
        ).scalar_one()

    new_key = os.urandom(32)
    crypto.configure(new_key, old_keys=[app_key])
    assert crypto.needs_rotation(old_token)
    with factory(app)() as s:
        case = s.get(Case, case_id)
        assert case is not None and case.subjects[0].name == canary
        instance, version = instance_of(s, case_id)
        wf = runtime.restore(version.sha256, version.spec_json, instance.state)
        assert runtime.ready_user_tasks(wf)
    # Work continues under the new key: the state is re-encrypted with it.
    complete_committed(app, case_id, "task_screen_acute", SCREENING)
    with app.extensions["lotsen_engine"].connect() as conn:
        state = conn.execute(
            text("SELECT state FROM process_instances WHERE case_id = :c"), {"c": case_id}
        ).scalar_one()
    assert state.startswith(crypto.key_id(new_key) + ".")
    assert not crypto.needs_rotation(state)

    crypto.configure(new_key)  # the old key forgotten: old rows can no longer be read
    with factory(app)() as s, pytest.raises(crypto.CryptoNotConfigured):
        s.execute(select(Subject.name).where(Subject.case_id == case_id)).scalar_one()


def test_blind_index(app_key: bytes) -> None:
    pnr = "19900101-1234"
    first = crypto.blind_index(pnr, purpose="personnummer")
    assert first == crypto.blind_index(pnr, purpose="personnummer")
    assert re.fullmatch(r"[0-9a-f]{64}", first) and pnr not in first
    assert first != crypto.blind_index("19900101-1235", purpose="personnummer")
    assert first != crypto.blind_index(pnr, purpose="something else")
    crypto.configure(os.urandom(32), old_keys=[app_key])
    assert crypto.blind_index(pnr, purpose="personnummer") != first


def test_subject_found_by_blind_index(app: Flask, app_key: bytes) -> None:
    pnr = "19851224-9876"
    case_id = start_committed(app, intake={**BASIC_INTAKE, "personnummer": pnr})
    start_committed(app, intake={**BASIC_INTAKE, "personnummer": "19851224-0000"})
    with factory(app)() as s:
        found = (
            s.execute(
                select(Subject.case_id).where(
                    Subject.personnummer_index == crypto.blind_index(pnr, purpose="personnummer")
                )
            )
            .scalars()
            .all()
        )
    assert found == [case_id]


def test_intake_and_decision_survive_a_full_round(app: Flask, app_key: bytes) -> None:
    """The encrypted workflow state and decision fields round-trip unchanged."""
    case_id = start_committed(app)
    run_to_assessment(app, case_id)
    propose_assessment(app, case_id)
    with factory(app)() as s:
        decision = newest_decision(s, case_id, "D-A6")
        assert decision.reasons == "Oskäliga villkor."
        instance, version = instance_of(s, case_id)
        wf = runtime.restore(version.sha256, version.spec_json, instance.state)
        data = runtime.workflow_data(wf)
        assert data["own_account"] == INDICATORS["own_account"]
        assert data["referral_source"] == "police"
