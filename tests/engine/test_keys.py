"""Data-key rotation (engine/keys.py, `lotsen rotate-keys`).

After a rotation every encrypted column and the personnummer blind index are under the new key:
the old key can be forgotten and everything still reads; a personnummer lookup works with the
new key alone. A rotation stopped half-way continues where it stopped, reads work in between,
and every batch is in the (still verifying) audit chain.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_testkit import (
    BASIC_INTAKE,
    SCREENING,
    app_on,
    complete_committed,
    factory,
    open_task,
    start_committed,
)
from flask import Flask
from sqlalchemy import select, text

from engine import actions, audit, crypto, keys
from engine.config import ConfigError, load_settings
from engine.models import AuditEntry, Draft, Subject
from tests.conftest import actor

PNR = "19850615-1237"


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    yield from app_on(database_url, tmp_path)


@pytest.fixture
def old_key(app: Flask) -> Iterator[bytes]:
    """The app's key (the one being retired); configured again after each test."""
    key: bytes = app.extensions["lotsen"].data_key
    yield key
    crypto.configure(key)


def _cases(app: Flask, count: int = 3) -> list[int]:
    ids = []
    for n in range(count):
        intake = {**BASIC_INTAKE, "subject_name": f"Person {n}", "personnummer": PNR}
        case_id = start_committed(app, intake=intake)
        complete_committed(app, case_id, "task_screen_acute", SCREENING)
        with factory(app)() as s:
            task = open_task(s, case_id, "task_hold_conversation")
            actions.save_draft(s, actor(s, "handlaggare"), task_id=task.id, data={"x": f"d{n}"})
            s.commit()
        ids.append(case_id)
    return ids


def _raw_values(app: Flask) -> list[str]:
    values = []
    with factory(app)() as s:
        for col in keys.encrypted_columns():
            values += [str(v) for v in s.execute(select(col.raw())).scalars() if v is not None]
    return values


def _rotate_to_new_key(old_key: bytes) -> bytes:
    new_key = os.urandom(32)
    crypto.configure(new_key, old_keys=[old_key])
    return new_key


def test_every_encrypted_column_is_found() -> None:
    names = {c.name for c in keys.encrypted_columns()}
    assert {
        "subjects.name",
        "subjects.personnummer",
        "process_instances.state",
        "drafts.data",
        "journal_notes.text",
        "decisions.reasons",
        "users.totp_secret",
    } <= names


def test_rotation_re_encrypts_everything_and_the_old_key_can_go(app: Flask, old_key: bytes) -> None:
    case_ids = _cases(app)
    old_id = crypto.key_id(old_key)
    assert all(v.startswith(old_id + ".") for v in _raw_values(app))
    new_key = _rotate_to_new_key(old_key)
    with factory(app)() as s:
        before = keys.pending(s)
    assert before["subjects.name"] == 3 and before["process_instances.state"] == 3

    report = keys.rotate(factory(app), batch_size=2)
    assert report.finished and report.total == sum(before.values())
    assert all(v.startswith(crypto.key_id(new_key) + ".") for v in _raw_values(app))
    with factory(app)() as s:
        assert sum(keys.pending(s).values()) == 0
        assert set(keys.key_ids_in_use(s)) == {crypto.key_id(new_key)}

    crypto.configure(new_key)  # the old key forgotten: everything still reads
    with factory(app)() as s:
        subjects = s.execute(select(Subject).where(Subject.case_id.in_(case_ids))).scalars()
        assert sorted(x.name or "" for x in subjects) == ["Person 0", "Person 1", "Person 2"]
        drafts = [d.data for d in s.execute(select(Draft)).scalars()]
        assert sorted(d["x"] for d in drafts) == ["d0", "d1", "d2"]
        # the blind index was recomputed under the new key alone
        index = crypto.blind_index(PNR, purpose="personnummer")
        found = s.execute(select(Subject).where(Subject.personnummer_index == index)).scalars()
        assert {x.case_id for x in found} == set(case_ids)
        assert audit.verify_chain(s) is None
        actions_logged = [
            e.action
            for e in s.execute(select(AuditEntry).where(AuditEntry.action.like("keys:%"))).scalars()
        ]
        assert actions_logged[0] == "keys:rotation_started"
        assert actions_logged[-1] == "keys:rotation_finished"
        assert actions_logged.count("keys:rotated") == report.batches
    # the app keeps working on the new key: a new step completes
    complete_committed(app, case_ids[0], "task_hold_conversation", {})


def test_a_stopped_rotation_resumes_and_reads_work_in_between(app: Flask, old_key: bytes) -> None:
    case_ids = _cases(app, 2)
    new_key = _rotate_to_new_key(old_key)
    first = keys.rotate(factory(app), batch_size=1, max_batches=2)
    assert not first.finished and first.total == 2
    with factory(app)() as s:
        left = sum(keys.pending(s).values())
        assert left > 0
        # mixed keys: both read; a lookup by personnummer finds old and new rows alike
        names = sorted(
            x.name or "" for x in s.execute(select(Subject)).scalars() if x.case_id in case_ids
        )
        assert names == ["Person 0", "Person 1"]
        candidates = crypto.blind_index_candidates(PNR, purpose="personnummer")
        hits = s.execute(
            select(Subject.case_id).where(Subject.personnummer_index.in_(candidates))
        ).scalars()
        assert set(hits) == set(case_ids)
    second = keys.rotate(factory(app), batch_size=50)
    assert second.finished and second.total == left
    crypto.configure(new_key)
    with factory(app)() as s:
        assert sum(keys.pending(s).values()) == 0
        assert audit.verify_chain(s) is None


def test_a_value_under_an_unknown_key_stops_rotation_cleanly(app: Flask, old_key: bytes) -> None:
    _cases(app, 1)
    crypto.configure(os.urandom(32))  # the old key NOT given: its rows cannot be read
    with pytest.raises(keys.RotationError, match="LOTSEN_DATA_KEY_OLD"):
        keys.rotate(factory(app))
    crypto.configure(old_key)
    assert all(v.startswith(crypto.key_id(old_key) + ".") for v in _raw_values(app))
    with factory(app)() as s:
        assert {x.name for x in s.execute(select(Subject)).scalars()} == {"Person 0"}


def test_a_row_changed_by_the_app_meanwhile_is_not_overwritten(app: Flask, old_key: bytes) -> None:
    (case_id,) = _cases(app, 1)
    _rotate_to_new_key(old_key)
    with factory(app)() as s:  # the app rewrites the name under the new key
        subject = s.execute(select(Subject).where(Subject.case_id == case_id)).scalar_one()
        stale = s.execute(
            text("SELECT name FROM subjects WHERE id = :i"), {"i": subject.id}
        ).scalar_one()
        subject.name = "Nytt Namn"
        s.commit()
        col = next(c for c in keys.encrypted_columns() if c.name == "subjects.name")
        # a rotation that read the old value before the change must not write it back
        result = s.execute(
            col.table.update()
            .where(col.table.c.id == subject.id, col.raw() == stale)
            .values(name=crypto.encrypt("Gammalt"))
        )
        assert result.rowcount == 0  # type: ignore[attr-defined]
        s.rollback()
    keys.rotate(factory(app))
    with factory(app)() as s:
        assert s.execute(select(Subject.name).where(Subject.case_id == case_id)).scalar_one() == (
            "Nytt Namn"
        )


def _b64(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


def test_old_keys_come_from_the_environment_or_a_file(tmp_path: Path) -> None:
    a, b, active = os.urandom(32), os.urandom(32), os.urandom(32)
    base = {"LOTSEN_ENV": "test", "LOTSEN_DATA_KEY": _b64(active)}
    settings = load_settings({**base, "LOTSEN_DATA_KEY_OLD": f"{_b64(a)}, {_b64(b)}"})
    assert settings.old_data_keys == (a, b)
    path = tmp_path / "old-keys"
    path.write_text(f"{_b64(a)}\n{_b64(active)}\n")
    settings = load_settings({**base, "LOTSEN_DATA_KEY_OLD_FILE": str(path)})
    assert settings.old_data_keys == (a,)  # the active key is not listed twice
    with pytest.raises(ConfigError, match="LOTSEN_DATA_KEY_OLD"):
        load_settings({**base, "LOTSEN_DATA_KEY_OLD": _b64(b"short")})
    with pytest.raises(ConfigError, match="LOTSEN_DATA_KEY_OLD"):
        load_settings({**base, "LOTSEN_DATA_KEY_OLD": "not base64 !!"})
    assert load_settings(base).old_data_keys == ()
