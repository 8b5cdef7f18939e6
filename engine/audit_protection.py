"""Make the access log append-only in PostgreSQL (security.md §4.1, §6 case 24).

The hash chain (:mod:`engine.audit`) *detects* a changed or removed entry; these triggers
*prevent* it for every role that cannot switch triggers off (the app's role must not own the
tables, see :func:`grant_app_role`).

``audit_log``
    INSERT only. UPDATE and DELETE raise (row triggers), TRUNCATE raises (statement trigger).

``audit_head`` (the single chain-head row)
    The head *must* change on every append: :func:`engine.audit.record` locks it, then moves
    it to the new entry. So it cannot be frozen like the log; instead the only update allowed
    is the one an append makes:

    * the row keeps ``id = 1`` and ``seq`` moves by exactly +1;
    * at commit (a deferred constraint trigger, so the order in which the ORM flushes the new
      entry and the head does not matter) an ``audit_log`` row with the new ``seq`` and the
      same ``entry_hash`` must exist.

    The head can never go back, skip, or point at a hash that is not in the log, and it can
    be neither deleted nor truncated. It may be created once, at genesis (``seq = 0``,
    the all-zero hash, an empty log). Together with the chain this means that removing the
    newest entries (the one edit the chain alone cannot see without the head) is refused too.

Dropping the head table (single writer, or ``SELECT max(seq) ... FOR UPDATE``) was not chosen:
the head row is what serialises concurrent writers, and "head = last entry" is what lets
verify-audit notice a truncated tail.

Limits: a superuser, the tables' owner (``ALTER TABLE ... DISABLE TRIGGER``) and a role
allowed to set ``session_replication_role`` can still bypass the triggers; the hash chain and
verify-audit remain the control for them (and pgaudit, security.md §4.1). The gallring of old
log segments will need a deliberate, owner-run procedure.
"""

from __future__ import annotations

import re

from sqlalchemy import Connection, text

_ROLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

_STATEMENTS = (
    # --- audit_log: append-only -----------------------------------------------------------------
    """
    CREATE OR REPLACE FUNCTION lotsen_audit_log_immutable() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END;
    $$
    """,
    "DROP TRIGGER IF EXISTS lotsen_audit_log_no_change ON audit_log",
    """
    CREATE TRIGGER lotsen_audit_log_no_change
        BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION lotsen_audit_log_immutable()
    """,
    "DROP TRIGGER IF EXISTS lotsen_audit_log_no_truncate ON audit_log",
    """
    CREATE TRIGGER lotsen_audit_log_no_truncate
        BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION lotsen_audit_log_immutable()
    """,
    # --- audit_head: only the +1 move of an append ----------------------------------------------
    """
    CREATE OR REPLACE FUNCTION lotsen_audit_head_guard() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            IF NEW.id = 1 AND NEW.seq = 0 AND NEW.entry_hash = repeat('0', 64)
               AND NOT EXISTS (SELECT 1 FROM audit_log) THEN
                RETURN NEW;
            END IF;
            RAISE EXCEPTION 'audit_head may only be created at genesis'
                USING ERRCODE = 'insufficient_privilege';
        ELSIF TG_OP = 'UPDATE' THEN
            IF NEW.id = OLD.id AND NEW.seq = OLD.seq + 1 THEN
                RETURN NEW;
            END IF;
            RAISE EXCEPTION 'audit_head may only move forward by one entry'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RAISE EXCEPTION 'audit_head: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END;
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION lotsen_audit_head_points_at_log() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF NOT EXISTS (
            SELECT 1 FROM audit_log WHERE seq = NEW.seq AND entry_hash = NEW.entry_hash
        ) THEN
            RAISE EXCEPTION 'audit_head must point at the newest audit_log entry'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NULL;
    END;
    $$
    """,
    "DROP TRIGGER IF EXISTS lotsen_audit_head_guard ON audit_head",
    """
    CREATE TRIGGER lotsen_audit_head_guard
        BEFORE INSERT OR UPDATE OR DELETE ON audit_head
        FOR EACH ROW EXECUTE FUNCTION lotsen_audit_head_guard()
    """,
    "DROP TRIGGER IF EXISTS lotsen_audit_head_no_truncate ON audit_head",
    """
    CREATE TRIGGER lotsen_audit_head_no_truncate
        BEFORE TRUNCATE ON audit_head
        FOR EACH STATEMENT EXECUTE FUNCTION lotsen_audit_log_immutable()
    """,
    "DROP TRIGGER IF EXISTS lotsen_audit_head_points_at_log ON audit_head",
    """
    CREATE CONSTRAINT TRIGGER lotsen_audit_head_points_at_log
        AFTER UPDATE ON audit_head
        DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION lotsen_audit_head_points_at_log()
    """,
)

_DROP = (
    "DROP TRIGGER IF EXISTS lotsen_audit_head_points_at_log ON audit_head",
    "DROP TRIGGER IF EXISTS lotsen_audit_head_no_truncate ON audit_head",
    "DROP TRIGGER IF EXISTS lotsen_audit_head_guard ON audit_head",
    "DROP TRIGGER IF EXISTS lotsen_audit_log_no_truncate ON audit_log",
    "DROP TRIGGER IF EXISTS lotsen_audit_log_no_change ON audit_log",
    "DROP FUNCTION IF EXISTS lotsen_audit_head_points_at_log()",
    "DROP FUNCTION IF EXISTS lotsen_audit_head_guard()",
    "DROP FUNCTION IF EXISTS lotsen_audit_log_immutable()",
)


def install_pg_protection(connection: Connection) -> bool:
    """Create (or replace) the append-only triggers; idempotent. No-op off PostgreSQL.

    Call it from the migration that creates the audit tables (``op.get_bind()``), inside
    the migration's transaction. Returns True when the triggers were installed.
    """
    if connection.dialect.name != "postgresql":
        return False
    for statement in _STATEMENTS:
        connection.execute(text(statement))
    return True


def remove_pg_protection(connection: Connection) -> bool:
    """Drop the triggers and functions again (a migration's downgrade)."""
    if connection.dialect.name != "postgresql":
        return False
    for statement in _DROP:
        connection.execute(text(statement))
    return True


def grant_app_role(connection: Connection, role: str) -> bool:
    """Give the web app's database role only what appending needs (security.md §4.1).

    ``audit_log``: SELECT, INSERT; ``audit_head``: SELECT, INSERT, UPDATE (the triggers limit
    the update to the +1 move). UPDATE, DELETE and TRUNCATE on the log are revoked. The role
    must not own the tables, or it could disable the triggers; run this as the owner.
    """
    if connection.dialect.name != "postgresql":
        return False
    if not _ROLE_NAME.fullmatch(role):
        raise ValueError("not a plain PostgreSQL role name")
    quoted = f'"{role}"'
    for statement in (
        f"REVOKE ALL ON audit_log FROM {quoted}",
        f"REVOKE ALL ON audit_head FROM {quoted}",
        f"GRANT SELECT, INSERT ON audit_log TO {quoted}",
        f"GRANT SELECT, INSERT, UPDATE ON audit_head TO {quoted}",
    ):
        connection.execute(text(statement))
    return True


__all__ = ["grant_app_role", "install_pg_protection", "remove_pg_protection"]
