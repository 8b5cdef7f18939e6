"""Data-key rotation: re-encrypt every encrypted column (and the blind index) under the new key.

Each ciphertext starts with the id of the key that made it (``<key id>.<sealed bytes>``, see
:mod:`engine.crypto`), so old and new ciphertexts live side by side: while a rotation runs the
app is configured with the new key (``LOTSEN_DATA_KEY``) plus the retired ones
(``LOTSEN_DATA_KEY_OLD``) and reads both. :func:`rotate` then rewrites the rows still made with
a retired key, in batches of one transaction each, so it can be stopped and started again at
any point: a rerun simply picks up the rows that still carry an old key id. Only when
:func:`pending` reports nothing left may the old key be removed from the configuration.

Every batch writes an audit entry (column and row count, never a value). Each row is rewritten
with a compare-and-swap (``WHERE value = <the value read>``), so a row changed by the app in the
meantime (already under the new key) is never overwritten with stale content.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, MetaData, Table, Text, and_, func, literal, select, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.expression import type_coerce

from engine import audit, crypto
from engine.audit import SYSTEM, Actor
from engine.db import Base, unit_of_work

#: Blind indexes kept beside an encrypted column: (table, encrypted column) -> (index column,
#: purpose). They are keyed with the data key, so they are recomputed with the ciphertext.
BLIND_INDEXES: dict[tuple[str, str], tuple[str, str]] = {
    ("subjects", "personnummer"): ("personnummer_index", "personnummer"),
}


class RotationError(RuntimeError):
    """Rotation cannot go on (a ciphertext was made with a key that is not configured)."""


@dataclass(frozen=True)
class EncryptedColumn:
    """One column stored through :class:`~engine.crypto.EncryptedText` / ``EncryptedJSON``."""

    table: Table
    column: str

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column}"

    def raw(self) -> ColumnElement[str]:
        """The column as stored (the ciphertext), bypassing decryption."""
        return type_coerce(self.table.c[self.column], Text)


def encrypted_columns(metadata: MetaData | None = None) -> list[EncryptedColumn]:
    """Every encrypted column of the schema, found from the column types (so the tables of
    later issues are covered without being listed here)."""
    found = []
    for table in (metadata or Base.metadata).sorted_tables:
        for column in table.columns:
            if isinstance(column.type, crypto.EncryptedText | crypto.EncryptedJSON):
                found.append(EncryptedColumn(table, column.name))
    return found


def _stale(col: EncryptedColumn) -> ColumnElement[bool]:
    active = crypto.active_key_id()
    return and_(col.raw().is_not(None), ~col.raw().like(f"{active}.%"))


def pending(session: Session) -> dict[str, int]:
    """Per encrypted column, how many values are still sealed with a retired key."""
    counts = {}
    for col in encrypted_columns():
        counts[col.name] = int(
            session.execute(
                select(func.count()).select_from(col.table).where(_stale(col))
            ).scalar_one()
        )
    return counts


def key_ids_in_use(session: Session) -> dict[str, int]:
    """How many stored values each key id sealed (to see which old keys are still needed)."""
    used: dict[str, int] = {}
    for col in encrypted_columns():
        for (token,) in session.execute(select(col.raw()).where(col.raw().is_not(None))):
            kid = crypto.key_id_of(str(token))
            used[kid] = used.get(kid, 0) + 1
    return used


@dataclass
class RotationReport:
    """What one run of :func:`rotate` did."""

    rows: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    finished: bool = False

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def _pk(table: Table) -> list[Any]:
    return list(table.primary_key.columns)


def _rotate_batch(
    session: Session, col: EncryptedColumn, batch_size: int, after: Any = None
) -> tuple[int, Any]:
    """Re-encrypt up to ``batch_size`` stale values of one column (primary key above ``after``
    when the key is a single column, so a big table is not rescanned from the start);
    return how many changed and the last key seen."""
    pk = _pk(col.table)
    query = select(*pk, col.raw()).where(_stale(col))
    if after is not None and len(pk) == 1:
        query = query.where(pk[0] > after)
    rows = session.execute(query.order_by(*pk).limit(batch_size)).all()
    if not rows:
        return 0, after
    index = BLIND_INDEXES.get((col.table.name, col.column))
    changed = 0
    for row in rows:
        *keys, old = row
        try:
            plaintext = crypto.decrypt(str(old))
        except crypto.CryptoNotConfigured as exc:
            raise RotationError(
                f"{col.name}: a value was sealed with key {crypto.key_id_of(str(old))}, which "
                "is not configured; add it to LOTSEN_DATA_KEY_OLD and run rotate-keys again"
            ) from exc
        values: dict[str, Any] = {col.column: literal(crypto.encrypt(plaintext), Text)}
        if index is not None:
            index_column, purpose = index
            values[index_column] = crypto.blind_index(plaintext, purpose=purpose)
        where = [c == k for c, k in zip(pk, keys, strict=True)]
        result = session.execute(update(col.table).where(*where, col.raw() == old).values(values))
        # 0 when the app changed the row meanwhile: it is then already on the new key
        changed += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return changed, rows[-1][0] if len(pk) == 1 else None


def rotate(
    factory: sessionmaker[Session],
    *,
    actor: Actor = SYSTEM,
    batch_size: int = 500,
    max_batches: int | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> RotationReport:
    """Re-encrypt every value still sealed with a retired key; resumable, audited per batch.

    ``max_batches`` stops early (the report says ``finished=False``); a later call continues.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    report = RotationReport()
    active = crypto.active_key_id()
    with unit_of_work(factory) as session:
        before = pending(session)
        audit.record(
            session,
            actor,
            "keys:rotation_started",
            object_type="data_key",
            object_id=active,
            details={"pending": sum(before.values())},
        )
    for col in _columns_with_work(before):
        idle = 0
        after: Any = None
        while True:
            if max_batches is not None and report.batches >= max_batches:
                return report
            with unit_of_work(factory) as session:
                count, after = _rotate_batch(session, col, batch_size, after)
                if count == 0:
                    after = None  # from the start once more: only stale rows are left
                    left = session.execute(
                        select(func.count()).select_from(col.table).where(_stale(col))
                    ).scalar_one()
                    idle += 1
                    if not left:
                        break
                    if idle > 3:
                        raise RotationError(f"{col.name}: rows keep changing; run it again")
                    continue
                idle = 0
                audit.record(
                    session,
                    actor,
                    "keys:rotated",
                    object_type="data_key",
                    object_id=active,
                    details={"column": col.name, "rows": count},
                )
            report.batches += 1
            report.rows[col.name] = report.rows.get(col.name, 0) + count
            if progress is not None:
                progress(col.name, count)
    with unit_of_work(factory) as session:
        left = sum(pending(session).values())
        report.finished = left == 0
        audit.record(
            session,
            actor,
            "keys:rotation_finished" if report.finished else "keys:rotation_incomplete",
            object_type="data_key",
            object_id=active,
            details={"rows": report.total, "remaining": left},
        )
    return report


def _columns_with_work(counts: dict[str, int]) -> Iterator[EncryptedColumn]:
    for col in encrypted_columns():
        if counts.get(col.name):
            yield col


def configure_from_settings(settings: Any) -> None:
    """Configure :mod:`engine.crypto` with the active key and every retired key."""
    crypto.configure(settings.data_key, list(getattr(settings, "old_data_keys", ()) or ()))


def new_key_text() -> str:
    """A fresh random data key, base64url (for ``LOTSEN_DATA_KEY``)."""
    import base64
    import os

    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii").rstrip("=")


__all__ = [
    "BLIND_INDEXES",
    "EncryptedColumn",
    "RotationError",
    "RotationReport",
    "configure_from_settings",
    "encrypted_columns",
    "key_ids_in_use",
    "new_key_text",
    "pending",
    "rotate",
]
