"""The access log is append-only in PostgreSQL (security.md §4.1, §6 case 24).

With the triggers installed: the app still appends and its chain verifies; UPDATE, DELETE
and TRUNCATE of ``audit_log`` are refused; the chain head only moves forward by one, onto an
entry that exists; the app's database role gets no UPDATE/DELETE at all. Switching the
triggers off (a superuser) is still caught by verify-audit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_testkit import app_on, factory, start_committed
from flask import Flask
from sqlalchemy import Connection, func, select, text
from sqlalchemy.exc import DBAPIError

from engine import audit
from engine.audit_protection import grant_app_role, install_pg_protection, remove_pg_protection
from engine.models import AuditEntry


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The app with a few entries, then the triggers (PostgreSQL only)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL triggers")
    for application in app_on(database_url, tmp_path):
        start_committed(application)
        with application.extensions["lotsen_engine"].begin() as conn:
            assert install_pg_protection(conn)
            assert install_pg_protection(conn)  # idempotent (a re-run migration)
        yield application


def _refused(app: Flask, statement: str, match: str = "audit", **params: object) -> None:
    with pytest.raises(DBAPIError, match=match), app.extensions["lotsen_engine"].begin() as conn:
        conn.execute(text(statement), params)


def _count(app: Flask) -> int:
    with factory(app)() as s:
        return int(s.execute(select(func.count()).select_from(AuditEntry)).scalar_one())


def _head(app: Flask) -> tuple[int, str]:
    with app.extensions["lotsen_engine"].connect() as conn:
        row = conn.execute(text("SELECT seq, entry_hash FROM audit_head")).one()
        return int(row.seq), str(row.entry_hash)


def test_app_still_appends_and_verifies(app: Flask) -> None:
    before = _count(app)
    start_committed(app)
    start_committed(app)
    assert _count(app) > before
    assert _head(app)[0] == _count(app)
    with factory(app)() as s:
        assert audit.verify_chain(s) is None


def test_update_delete_truncate_of_the_log_are_refused(app: Flask) -> None:
    before = _count(app)
    _refused(app, "UPDATE audit_log SET actor_name = 'someone_else' WHERE seq = 1", "append-only")
    _refused(app, "UPDATE audit_log SET purpose = NULL", "append-only")
    _refused(app, "DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)")
    _refused(app, "DELETE FROM audit_log", "append-only")
    _refused(app, "TRUNCATE audit_log", "append-only")
    assert _count(app) == before
    with factory(app)() as s:
        assert audit.verify_chain(s) is None


def test_the_head_only_moves_forward_onto_an_entry(app: Flask) -> None:
    seq, entry_hash = _head(app)
    _refused(app, "UPDATE audit_head SET seq = seq - 1", "forward")
    _refused(app, "UPDATE audit_head SET entry_hash = :h", "forward", h="f" * 64)
    _refused(app, "UPDATE audit_head SET seq = seq + 2", "forward")
    # +1 is the shape of an append, but there is no such entry: refused at commit
    _refused(app, "UPDATE audit_head SET seq = seq + 1, entry_hash = :h", "newest", h="a" * 64)
    _refused(app, "DELETE FROM audit_head", "refused")
    _refused(app, "TRUNCATE audit_head", "append-only")
    _refused(app, "INSERT INTO audit_head (id, seq, entry_hash) VALUES (2, 0, :h)", h="0" * 64)
    assert _head(app) == (seq, entry_hash)


def test_removing_the_newest_entries_is_refused(app: Flask) -> None:
    """The one edit the chain cannot see without the head: cutting off the tail."""
    seq, _ = _head(app)
    _refused(app, "DELETE FROM audit_log WHERE seq > :s", s=seq - 2)
    _refused(
        app,
        "UPDATE audit_head SET seq = :s, entry_hash = "
        "(SELECT entry_hash FROM audit_log WHERE seq = :s)",
        "forward",
        s=seq - 2,
    )


def test_the_app_role_has_no_update_or_delete(app: Flask) -> None:
    role = f"lotsen_app_{uuid.uuid4().hex[:10]}"
    engine = app.extensions["lotsen_engine"]
    with engine.begin() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        conn.execute(text(f'CREATE ROLE "{role}" NOLOGIN'))
        conn.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))
        assert grant_app_role(conn, role)
    try:

        def as_app(conn: Connection) -> None:
            conn.execute(text(f'SET LOCAL ROLE "{role}"'))

        with engine.begin() as conn:
            as_app(conn)
            assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one() > 0
        for statement in (
            "UPDATE audit_log SET actor_name = 'x' WHERE seq = 1",
            "DELETE FROM audit_log WHERE seq = 1",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(DBAPIError, match="permission denied"), engine.begin() as conn:
                as_app(conn)
                conn.execute(text(statement))
        with pytest.raises(ValueError), engine.begin() as conn:
            grant_app_role(conn, 'x"; DROP TABLE audit_log; --')
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))


def test_a_superuser_bypass_is_still_detected(app: Flask) -> None:
    """§6 case 24, second half: triggers off (superuser), one row edited → verify-audit alerts."""
    with app.extensions["lotsen_engine"].begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("UPDATE audit_log SET purpose = 'nothing to see' WHERE seq = 2"))
    with factory(app)() as s:
        broken = audit.verify_chain(s)
    assert broken is not None and broken.seq == 2
    # and the triggers were only off in that transaction
    _refused(app, "UPDATE audit_log SET purpose = NULL WHERE seq = 3", "append-only")


def test_protection_can_be_removed_again(app: Flask) -> None:
    with app.extensions["lotsen_engine"].begin() as conn:
        assert remove_pg_protection(conn)
    with app.extensions["lotsen_engine"].begin() as conn:
        conn.execute(text("UPDATE audit_log SET purpose = purpose WHERE seq = 1"))


def test_the_first_entry_creates_the_head_once(database_url: str) -> None:
    """Genesis: on an empty log the head may be created (seq 0) and then moved to entry 1."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL triggers")
    from sqlalchemy.orm import Session

    from engine.db import Base, make_engine

    engine = make_engine(database_url)
    try:
        Base.metadata.create_all(engine)
        with engine.begin() as conn:
            install_pg_protection(conn)
        with Session(engine) as s:
            audit.record(s, audit.SYSTEM, "test:first")
            audit.record(s, audit.SYSTEM, "test:second")
            s.commit()
            assert audit.verify_chain(s) is None
        with pytest.raises(DBAPIError, match="DELETE refused"), engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_head"))
        with pytest.raises(DBAPIError, match="genesis"), engine.begin() as conn:
            conn.execute(
                text("INSERT INTO audit_head (id, seq, entry_hash) VALUES (1, 0, :h)"),
                {"h": "0" * 64},
            )
    finally:
        engine.dispose()


def test_install_is_a_no_op_off_postgresql(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as conn:
        assert install_pg_protection(conn) is False
        assert remove_pg_protection(conn) is False
        assert grant_app_role(conn, "lotsen") is False
    engine.dispose()
