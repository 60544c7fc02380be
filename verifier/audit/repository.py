"""All SQL of the audit log: the append lock, the chain's head, the appends, the walk in id order, and the
filtered keyset pages the dashboard reads.

The caller owns the session and the transaction; nothing here commits. The hash chain itself is
:mod:`verifier.audit.log`.
"""

from __future__ import annotations

import functools
from collections.abc import Generator, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, Row, Text, TextClause, bindparam, cast, func, insert, select, text
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


#: The most events :func:`append_linked` chains in one statement (a decision appends two or three; a staff action
#: revoking a customer's leases may append hundreds, which are inserted in one statement after the head is read).
MAX_LINKED: Final = 8


def links_in_sql(session: Session, events: int) -> bool:
    """Whether the database links ``events`` appended events itself (:func:`append_linked`: PostgreSQL, at most
    :data:`MAX_LINKED`) rather than the caller reading the head and hashing (:func:`head_hash`,
    :func:`insert_events`)."""
    return events <= MAX_LINKED and session.get_bind().dialect.name == "postgresql"


def insert_events(session: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert events now, in one Core statement: each row holds ``at``, ``tag``, ``actor``, ``subject_type``,
    ``subject_id``, ``prev_hash``, ``hash`` and ``data_json`` (the data's JSON text, stored as it is); their ids,
    in order."""
    statement = _APPEND_SQLITE if session.get_bind().dialect.name == "sqlite" else _APPEND_POSTGRESQL
    return list(session.scalars(statement, list(rows)))


@functools.cache
def _linked(n: int) -> TextClause:
    """PostgreSQL: ``n`` (at most :data:`MAX_LINKED`) events appended after the chain's head in one statement, each
    linked to the one before (``e0`` is the head's hash, or ``genesis``) and hashed there: ``hash =
    sha256(prev_hash || body)``. Parameters: genesis, at, and per event i (1..n) tag, actor, subject_type,
    subject_id, data (its JSON text) and body (what is hashed after the previous hash). Each INSERT reads the one
    before it, so ids rise along the chain. Built once per ``n``."""
    # Only the event's position i (an int) is interpolated; every value is a bound parameter.
    insert_as = (
        "e{i} AS (INSERT INTO audit_events (at, tag, actor, subject_type, subject_id, data, prev_hash, hash) "
        "SELECT :at, :tag{i}, :actor{i}, :subject_type{i}, :subject_id{i}, CAST(:data{i} AS json), hash, "
        "sha256(hash || :body{i}) FROM e{before} RETURNING id, prev_hash, hash)"
    )
    head = "e0 AS (SELECT coalesce((SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1), :genesis) AS hash)"
    ctes = [head, *(insert_as.format(i=i, before=i - 1) for i in range(1, n + 1))]
    rows = " UNION ALL ".join(f"SELECT id, prev_hash, hash FROM e{i}" for i in range(1, n + 1))  # noqa: S608
    return text(f"WITH {', '.join(ctes)} {rows}")


def append_linked(
    session: Session, *, at: datetime, genesis: bytes, events: Sequence[dict[str, Any]]
) -> list[tuple[int, bytes, bytes]]:
    """Append ``events`` after the chain's head in one statement (PostgreSQL; :func:`_linked`): each holds
    ``tag``, ``actor``, ``subject_type``, ``subject_id``, ``data`` (JSON text) and ``body`` (bytes). Call it under
    :func:`lock_appends`. Returns (id, prev hash, hash) of each, in chain order."""
    rows = session.execute(_linked(len(events)), _linked_params(at, genesis, events)).all()
    return sorted((int(r[0]), bytes(r[1]), bytes(r[2])) for r in rows)


def append_linked_unread(session: Session, *, at: datetime, genesis: bytes, events: Sequence[dict[str, Any]]) -> None:
    """:func:`append_linked`, its result left unread (so it may be sent in a pipeline:
    :func:`verifier.db.pipeline.sent_together`)."""
    session.execute(_linked(len(events)), _linked_params(at, genesis, events))


def _linked_params(at: datetime, genesis: bytes, events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    params: dict[str, Any] = {"at": at, "genesis": genesis}
    for i, event in enumerate(events, 1):
        params.update({f"{k}{i}": v for k, v in event.items()})
    return params


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
