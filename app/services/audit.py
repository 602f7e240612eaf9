"""Appending to and verifying the hash-chained audit trail.

Appends are serialized: on PostgreSQL with a transaction-scoped advisory lock (taken with the
read of the chain's end, ``audit_chain_end``), on SQLite by its single writer. Even without
the lock the chain could not fork, because ``prev_hash`` is unique — a racing writer would
fail instead.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

import sqlalchemy as sa

from models import AuditEvent, User, db
from models.audit import GENESIS_HASH
from models.base import utcnow

# Arbitrary constant naming this lock among the application's advisory locks.
AUDIT_LOCK_KEY = 0x58594441  # "XYDA"


def canonical(event: AuditEvent) -> str:
    """The event's content in a stable form: sorted keys, UTC ISO time with microseconds."""
    body = {
        "seq": event.seq,
        "occurred_at": event.occurred_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor_user_id": event.actor_user_id,
        "actor_org_id": event.actor_org_id,
        "action": event.action,
        "enterprise_id": event.enterprise_id,
        "scope": event.scope,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "details": event.details or {},
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash: str, event: AuditEvent) -> str:
    return hashlib.sha256((prev_hash + canonical(event)).encode()).hexdigest()


_COLUMNS = tuple(column.key for column in AuditEvent.__table__.columns if column.key != "id")


@cache
def _chain_end() -> sa.Select[int, str]:
    """The last event's ``seq`` and hash; built once (every audited request reads it)."""
    return sa.select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)


_LOCKED_CHAIN_END = sa.text("SELECT seq, hash FROM audit_chain_end(:k)")


def _locked_chain_end() -> Any:
    """Lock the chain for this transaction and read its last event (``seq``, ``hash``; None
    when empty). On PostgreSQL one call of ``audit_chain_end`` (migration 0021): the lock,
    then the read with a snapshot taken after it."""
    if db.session.get_bind().dialect.name == "postgresql":
        return db.session.execute(_LOCKED_CHAIN_END, {"k": AUDIT_LOCK_KEY}).first()
    return db.session.execute(_chain_end()).first()


@dataclass(frozen=True)
class Entry:
    """One event to append with :func:`record_many` (the arguments of :func:`record`)."""

    action: str
    actor: User | None
    enterprise_id: int | None = None
    scope: str | None = None
    object_type: str | None = None
    object_id: str | int | None = None
    details: dict[str, Any] | None = None
    actor_org_id: int | None = None


def record(
    action: str,
    *,
    actor: User | None,
    enterprise_id: int | None = None,
    scope: str | None = None,
    object_type: str | None = None,
    object_id: str | int | None = None,
    details: dict[str, Any] | None = None,
    actor_org_id: int | None = None,
    now: dt.datetime | None = None,
) -> AuditEvent:
    """Append one event (flushed, committed by the caller with the change it records).

    ``actor`` None means the platform itself (a job, a provider push: pass
    ``actor_org_id`` for the organization acting, if any).
    """
    entry = Entry(
        action, actor, enterprise_id, scope, object_type, object_id, details, actor_org_id
    )
    return record_many([entry], now=now)[0]


def record_many(entries: Sequence[Entry], now: dt.datetime | None = None) -> list[AuditEvent]:
    """Append several events in order, chained one after the other, with one lock and read
    of the chain's end and one INSERT. Call it after the request's reads, just before the
    commit: on PostgreSQL the chain's lock is held from here to the end of the transaction.

    Returns the events as written (``seq``, content and hashes; not added to the session,
    so without their ``id``)."""
    if not entries:
        return []
    last = _locked_chain_end()
    seq, prev = (last.seq + 1, last.hash) if last else (1, GENESIS_HASH)
    now = now or utcnow()
    events = []
    for entry in entries:
        actor = entry.actor
        event = AuditEvent(
            seq=seq,
            occurred_at=now,
            actor_user_id=actor.id if actor else None,
            actor_org_id=actor.organization_id if actor else entry.actor_org_id,
            action=entry.action,
            enterprise_id=entry.enterprise_id,
            scope=entry.scope,
            object_type=entry.object_type,
            object_id=None if entry.object_id is None else str(entry.object_id),
            details=entry.details or {},
            prev_hash=prev,
        )
        event.hash = chain_hash(prev, event)
        events.append(event)
        seq, prev = seq + 1, event.hash
    # Flush what the events record first (as an ORM flush of the events would), then
    # insert them as plain rows: no unit of work for a page view's two or three events.
    db.session.flush()
    db.session.execute(
        sa.insert(cast(sa.Table, AuditEvent.__table__)),
        [{name: getattr(event, name) for name in _COLUMNS} for event in events],
    )
    return events


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_broken_seq: int | None = None
    first_broken_id: int | None = None
    problem: str | None = None  # in English, for the command line and the logs
    kind: str | None = None  # the problem for a page to say in its language: PROBLEMS
    numbers: tuple[int, ...] = ()  # the sequence numbers its words name


# What a broken chain's first bad event shows, in English (the page words them in its
# language from ``kind`` and ``numbers``: templates/office/_audit_verify.html).
PROBLEMS = {
    "jump": "sequence jumps from {0} to {1} (events deleted)",
    "unlinked": "does not follow the previous event (deleted or reordered)",
    "edited": "content does not match its hash (edited)",
    "missing": "events {0} to {1} are missing (deleted)",
}


def verify(batch_size: int = 5000) -> ChainReport:
    """Walk the chain in ``seq`` order and name the first event that does not fit.

    Detects an edited event (its hash no longer matches its content), a deleted one (the
    next event's ``prev_hash`` or ``seq`` does not follow) and reordering. The office's
    button runs it in parts as a job (:mod:`app.services.audit_verify`).
    """
    return verify_range(1, None, batch_size)


def verify_range(first: int, last: int | None, batch_size: int = 5000) -> ChainReport:
    """:func:`verify` of the events ``first`` to ``last`` (to the chain's end if None): each
    event linked to the one before (the event before ``first`` included), its content
    matching its hash, and — with ``last`` — none missing up to ``last``. ``checked`` counts
    the intact events of the range before the first problem."""
    if first == 1:
        prev_hash: str | None = GENESIS_HASH
    else:  # missing, when deleted: the part before this one reports it
        prev_hash = db.session.scalar(sa.select(AuditEvent.hash).where(AuditEvent.seq == first - 1))
    expected_seq, checked, last_seq = first, 0, first - 1
    while True:
        query = sa.select(AuditEvent).where(AuditEvent.seq > last_seq)
        if last is not None:
            query = query.where(AuditEvent.seq <= last)
        events = db.session.scalars(query.order_by(AuditEvent.seq).limit(batch_size)).all()
        if not events:
            break
        for event in events:
            kind: str | None = None
            numbers: tuple[int, ...] = ()
            if event.seq != expected_seq:
                kind, numbers = "jump", (expected_seq - 1, event.seq)
            elif prev_hash is not None and event.prev_hash != prev_hash:
                kind = "unlinked"
            elif chain_hash(event.prev_hash, event) != event.hash:
                kind = "edited"
            if kind:
                problem = PROBLEMS[kind].format(*numbers)
                return ChainReport(False, checked, event.seq, event.id, problem, kind, numbers)
            prev_hash, expected_seq, checked = event.hash, event.seq + 1, checked + 1
        last_seq = events[-1].seq
        db.session.expunge_all()
    if last is not None and expected_seq <= last:
        numbers = (expected_seq, last)
        problem = PROBLEMS["missing"].format(*numbers)
        return ChainReport(False, checked, expected_seq, None, problem, "missing", numbers)
    return ChainReport(True, checked)


def enterprise_events_query(enterprise_id: int) -> sa.Select[Any]:
    """Every event about one enterprise, newest first (its data-use log, paged)."""
    return (
        sa.select(AuditEvent)
        .where(AuditEvent.enterprise_id == enterprise_id)
        .order_by(AuditEvent.seq.desc())
    )


def events_for_enterprise(enterprise_id: int, limit: int = 200) -> list[AuditEvent]:
    return list(db.session.scalars(enterprise_events_query(enterprise_id).limit(limit)))
