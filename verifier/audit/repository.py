"""All SQL of the audit log: the append lock, the chain's head, the appends, and the walk in id order.

The caller owns the session and the transaction; nothing here commits. The hash chain itself is
:mod:`verifier.audit.log`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from verifier.db.models import AuditEvent

_LOCK_KEY: Final = 0x6B657977  # "keyw": the advisory lock that orders audit appends
_ADVISORY_LOCK: Final = text("SELECT pg_advisory_xact_lock(:k)")
_TAIL: Final = select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)  # the chain's head


def lock_appends(session: Session) -> None:
    """Serialise appends until the transaction ends (a transaction-scoped PostgreSQL advisory lock; SQLite's
    transactions already hold the database's write lock)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_ADVISORY_LOCK, {"k": _LOCK_KEY})


def head_hash(session: Session) -> bytes | None:
    """The newest event's hash, or None for an empty log."""
    return session.scalar(_TAIL)


def add_events(session: Session, events: Sequence[AuditEvent]) -> None:
    """Append ``events`` (already linked) and flush."""
    session.add_all(events)
    session.flush()


def events_in_order(session: Session) -> Iterator[AuditEvent]:
    """Every event, oldest (lowest id) first, streamed."""
    yield from session.scalars(select(AuditEvent).order_by(AuditEvent.id))
