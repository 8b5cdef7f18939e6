"""The tamper-evident access log: append entries and verify the hash chain.

``entry_hash = SHA-256(prev_hash || canonical JSON of the entry)``, with a gap-free sequence.
Writers lock the single chain-head row, so entries written in concurrent transactions
never fork the chain. An entry is written in the same transaction as the change it records.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db import utcnow
from engine.models import AuditEntry, AuditHead

GENESIS = "0" * 64


@dataclass(frozen=True)
class Actor:
    """Who is acting: enough to authorise and to write the audit entry."""

    user_id: int | None
    username: str
    roles: frozenset[tuple[str, int | None]] = frozenset()
    source_ip: str | None = None
    session_ref: str | None = None

    @property
    def role_names(self) -> frozenset[str]:
        """The role ids the actor holds, whatever the unit."""
        return frozenset(role for role, _ in self.roles)

    def has_role(self, role: str, unit_id: int | None = None) -> bool:
        """True if the actor holds ``role`` for ``unit_id`` (or municipality-wide)."""
        return any(
            r == role and (u is None or unit_id is None or u == unit_id) for r, u in self.roles
        )

    def units_for(self, role: str) -> set[int | None]:
        """The units for which the actor holds ``role`` (None = every unit)."""
        return {u for r, u in self.roles if r == role}


SYSTEM = Actor(user_id=None, username="system")


def _canonical(entry: AuditEntry) -> bytes:
    body = {
        "seq": entry.seq,
        "ts": entry.ts.isoformat(),
        "action": entry.action,
        "outcome": entry.outcome,
        "actor_id": entry.actor_id,
        "actor_name": entry.actor_name,
        "actor_roles": entry.actor_roles,
        "case_id": entry.case_id,
        "object_type": entry.object_type,
        "object_id": entry.object_id,
        "purpose": entry.purpose,
        "source_ip": entry.source_ip,
        "details": entry.details or {},
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _clean(text: str, limit: int) -> str:
    """Fit untrusted text into a log column: no NUL bytes, bounded length."""
    return text.replace("\x00", "")[:limit]


def compute_hash(prev_hash: str, entry: AuditEntry) -> str:
    """The chain hash of an entry given the previous entry's hash."""
    return hashlib.sha256(prev_hash.encode("ascii") + _canonical(entry)).hexdigest()


def record(
    session: Session,
    actor: Actor,
    action: str,
    *,
    case_id: int | None = None,
    object_type: str | None = None,
    object_id: str | int | None = None,
    purpose: str | None = None,
    outcome: str = "allowed",
    details: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry to the chain inside the caller's transaction."""
    head = session.execute(
        select(AuditHead).where(AuditHead.id == 1).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        head = AuditHead(id=1, seq=0, entry_hash=GENESIS)
        session.add(head)
        session.flush()
    roles = ",".join(sorted(f"{r}@{u}" if u else r for r, u in actor.roles)) or None
    entry = AuditEntry(
        seq=head.seq + 1,
        ts=utcnow(),
        action=action,
        outcome=outcome,
        actor_id=actor.user_id,
        actor_name=_clean(actor.username, 100),
        actor_roles=roles,
        case_id=case_id,
        object_type=object_type,
        object_id=None if object_id is None else _clean(str(object_id), 64),
        purpose=None if purpose is None else _clean(purpose, 300),
        source_ip=actor.source_ip,
        details=dict(details or {}),
        prev_hash=head.entry_hash,
        entry_hash="",
    )
    entry.entry_hash = compute_hash(head.entry_hash, entry)
    head.seq = entry.seq
    head.entry_hash = entry.entry_hash
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class ChainBreak:
    """Where verification failed and why."""

    seq: int
    reason: str


def verify_entries(entries: Iterable[AuditEntry]) -> ChainBreak | None:
    """Recompute the chain; return the first break, or None when it is intact."""
    prev = GENESIS
    expected_seq = 1
    for entry in entries:
        if entry.seq != expected_seq:
            return ChainBreak(expected_seq, f"entry {expected_seq} is missing")
        if entry.prev_hash != prev:
            return ChainBreak(entry.seq, "previous-hash link does not match")
        if compute_hash(prev, entry) != entry.entry_hash:
            return ChainBreak(entry.seq, "entry content does not match its hash")
        prev = entry.entry_hash
        expected_seq += 1
    return None


def verify_chain(session: Session) -> ChainBreak | None:
    """Verify the whole log, including that the head points at the last entry."""
    entries = session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars()
    broken = verify_entries(entries)
    if broken:
        return broken
    head = session.get(AuditHead, 1)
    last = session.execute(
        select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)
    ).scalar_one_or_none()
    if head is None:
        if last is not None:
            return ChainBreak(last.seq, "the chain head is missing")
        return None
    if last is None or head.seq != last.seq or head.entry_hash != last.entry_hash:
        return ChainBreak(head.seq, "entries after this point were removed")
    return None
