"""All SQL of the audit log: the append lock, the chain's head, the appends, the walk in id order, and the
filtered keyset pages the dashboard reads.

The caller owns the session and the transaction; nothing here commits. The hash chain itself is
:mod:`verifier.audit.log`.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, Row, Text, bindparam, cast, func, insert, select, text
from sqlalchemy.orm import Session

from verifier.db.models import AuditEvent
from verifier.db.rows import table

_LOCK_KEY: Final = 0x6B657977  # "keyw": the advisory lock that orders audit appends
_ADVISORY_LOCK: Final = text("SELECT pg_advisory_xact_lock(:k)")
_EVENTS: Final = table(AuditEvent)
_TAIL: Final = select(_EVENTS.c.hash).order_by(_EVENTS.c.id.desc()).limit(1)  # the chain's head


def lock_appends(session: Session) -> None:
    """Serialise appends until the transaction ends (a transaction-scoped PostgreSQL advisory lock; SQLite's
    transactions already hold the database's write lock)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_ADVISORY_LOCK, {"k": _LOCK_KEY})


def head_hash(session: Session) -> bytes | None:
    """The newest event's hash, or None for an empty log."""
    return session.scalar(_TAIL)


def _append(data: Any) -> Any:
    """INSERT of events whose ``data`` is given as its canonical JSON text (parameter ``data_json``), returning their
    ids in the order given."""
    return insert(_EVENTS).values(data=data).returning(_EVENTS.c.id, sort_by_parameter_order=True)


#: PostgreSQL parses the text as ``json`` (kept verbatim); SQLite stores JSON as text.
_APPEND_POSTGRESQL: Final = _append(cast(bindparam("data_json", type_=Text), _EVENTS.c.data.type))
_APPEND_SQLITE: Final = _append(bindparam("data_json", type_=Text))


def insert_events(session: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert events now, in one Core statement: each row holds ``at``, ``tag``, ``actor``, ``subject_type``,
    ``subject_id``, ``prev_hash``, ``hash`` and ``data_json`` (the data's JSON text, stored as it is); their ids,
    in order."""
    statement = _APPEND_SQLITE if session.get_bind().dialect.name == "sqlite" else _APPEND_POSTGRESQL
    return list(session.scalars(statement, list(rows)))


def event_by_id(session: Session, event_id: int) -> AuditEvent | None:
    """One event, or None."""
    return session.get(AuditEvent, event_id, populate_existing=True)


#: What the chain walk reads of each event: every hashed field and the two hashes (no ORM objects: a walk over
#: 200,000 events spent half its time building them).
_CHAIN_COLUMNS: Final = (
    AuditEvent.id,
    AuditEvent.at,
    AuditEvent.tag,
    AuditEvent.actor,
    AuditEvent.subject_type,
    AuditEvent.subject_id,
    AuditEvent.data,
    AuditEvent.prev_hash,
    AuditEvent.hash,
)


def events_in_order(
    session: Session, *, after_id: int | None = None
) -> Generator[Row[int, datetime, str, str, str, str, dict[str, Any], bytes, bytes]]:
    """Every event (with an id above ``after_id``, if given) as (id, at, tag, actor, subject type, subject id, data,
    prev hash, hash), oldest (lowest id) first, streamed in batches (the whole log is never held at once); close
    the iterator when stopping early (it holds a server-side cursor)."""
    query = select(*_CHAIN_COLUMNS).order_by(AuditEvent.id)
    if after_id is not None:
        query = query.where(AuditEvent.id > after_id)
    result = session.execute(query.execution_options(yield_per=5000))
    try:
        yield from result
    finally:
        result.close()


def events_page(
    session: Session,
    *,
    actor: str | None = None,
    tag: str | None = None,
    subject_type: str | None = None,
    subject_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int,
) -> Sequence[AuditEvent]:
    """At most ``limit`` events matching every filter given (``actor`` case-insensitively, the others exactly;
    ``since <= at < until``), with ids below ``before_id``, newest (highest id) first: a keyset page."""
    where: list[ColumnElement[bool]] = []
    if actor is not None:
        where.append(func.lower(AuditEvent.actor) == actor.lower())
    if tag is not None:
        where.append(AuditEvent.tag == tag)
    if subject_type is not None:
        where.append(AuditEvent.subject_type == subject_type)
    if subject_id is not None:
        where.append(AuditEvent.subject_id == subject_id)
    if since is not None:
        where.append(AuditEvent.at >= since)
    if until is not None:
        where.append(AuditEvent.at < until)
    if before_id is not None:
        where.append(AuditEvent.id < before_id)
    return session.scalars(select(AuditEvent).where(*where).order_by(AuditEvent.id.desc()).limit(limit)).all()
