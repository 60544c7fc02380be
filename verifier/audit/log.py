"""Append-only audit log with a hash chain: each event stores the previous event's hash and its own.

``hash = SHA-256(prev_hash || canonical JSON of {at, tag, actor, subject_type, subject_id, data})``. Editing or
deleting any stored event breaks every later link, which :func:`verify_chain` detects. Appends serialise on a
transaction-scoped PostgreSQL advisory lock so concurrent writers cannot fork the chain. The caller owns the
session and commits (the event is part of the same transaction as the decision it records). The SQL is in
:mod:`verifier.audit.repository`.

Reading: :func:`verify_chain` walks the whole chain; :func:`read_events` gives one filtered keyset page of events,
newest first (the dashboard's audit log).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy.orm import Session

from verifier.audit import repository
from verifier.db.models import AuditEvent

GENESIS: Final = bytes(32)


class AuditTag(StrEnum):
    """``source:subject:action``."""

    ATTESTATION_ACCEPTED = "worker:attestation:accepted"
    ATTESTATION_REJECTED = "worker:attestation:rejected"
    LEASE_ISSUED = "worker:lease:issued"
    LEASE_RENEWED = "worker:lease:renewed"
    LEASE_EXPIRED = "beat:lease:expired"
    LEASE_REVOKED = "admin:lease:revoked"
    LEASE_RELEASED = "enclave:lease:released"
    ENTITLEMENT_CREATED = "admin:entitlement:created"
    CREDENTIAL_ISSUED = "admin:credential:issued"
    LEASE_SUPERSEDED = "worker:lease:superseded"  # a new lease for the same deployment revoked it
    ENTITLEMENT_STATUS_CHANGED = "admin:entitlement:status_changed"
    CUSTOMER_CREATED = "admin:customer:created"
    CUSTOMER_STATUS_CHANGED = "admin:customer:status_changed"
    DEPLOYMENT_STATUS_CHANGED = "admin:deployment:status_changed"  # suspended or reinstated by staff
    CREDENTIAL_REVOKED = "admin:credential:revoked"
    STAFF_CREATED = "cli:staff:created"
    STAFF_LOGIN_SUCCEEDED = "dashboard:staff:login_succeeded"
    STAFF_LOGIN_FAILED = "dashboard:staff:login_failed"
    STAFF_LOCKED_OUT = "dashboard:staff:locked_out"
    STAFF_LOGGED_OUT = "dashboard:staff:logged_out"
    EVIDENCE_DOWNLOADED = "dashboard:evidence:downloaded"  # staff downloaded an attestation's raw evidence
    MODEL_CREATED = "admin:model:created"
    MODEL_VERSION_CREATED = "admin:model_version:created"  # with its first DEK (generated or imported), wrapped
    REFERENCE_VALUES_CREATED = "admin:reference_values:created"  # typed in, or drafted from an attestation's claims
    REFERENCE_VALUES_STATUS_CHANGED = "admin:reference_values:status_changed"  # activated or retired
    REFERENCE_VALUES_DRAFT_CHANGED = "admin:reference_values:draft_changed"  # a CCE policy added to a draft
    POLICY_CREATED = "admin:policy:created"  # with its document's SHA-256
    POLICY_DELETED = "admin:policy:deleted"  # one no entitlement named; with its document's SHA-256


def _digest(
    prev: bytes, at: datetime, tag: str, actor: str, subject_type: str, subject_id: str, data: dict[str, Any]
) -> bytes:
    body = json.dumps(
        {
            "at": at.isoformat(),
            "tag": tag,
            "actor": actor,
            "subject_type": subject_type,
            "subject_id": subject_id,
            "data": data,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    ).encode()
    return hashlib.sha256(prev + body).digest()


@dataclass(frozen=True, slots=True)
class Entry:
    """One event to append (see :func:`record_events`)."""

    tag: AuditTag
    actor: str
    subject_type: str
    subject_id: str
    data: dict[str, Any]


def record_event(
    session: Session,
    *,
    tag: AuditTag,
    actor: str,
    subject_type: str,
    subject_id: str,
    data: dict[str, Any],
    at: datetime,
) -> AuditEvent:
    """Append one event to the chain (flushes; never commits)."""
    return record_events(session, [Entry(tag, actor, subject_type, subject_id, data)], at=at)[0]


def record_events(session: Session, entries: Sequence[Entry], *, at: datetime) -> list[AuditEvent]:
    """Append ``entries`` in order, linked to each other, under one lock and one read of the chain's tail
    (a decision records two events; each append used to take the lock and read the tail again). Flushes; never
    commits: the events belong to the caller's transaction, which holds the lock until it ends."""
    repository.lock_appends(session)
    prev = repository.head_hash(session) or GENESIS
    events = []
    for e in entries:
        data = json.loads(json.dumps(e.data, default=str))  # store exactly what was hashed
        event = AuditEvent(
            at=at,
            tag=e.tag.value,
            actor=e.actor,
            subject_type=e.subject_type,
            subject_id=e.subject_id,
            data=data,
            prev_hash=prev,
            hash=_digest(prev, at, e.tag.value, e.actor, e.subject_type, e.subject_id, data),
        )
        events.append(event)
        prev = event.hash
    repository.add_events(session, events)
    return events


class ChainBreak(StrEnum):
    """Why the first broken event does not hold."""

    LINK = "link"  # its prev_hash is not the previous event's hash: an event before it was removed or inserted
    HASH = "hash"  # its hash is not the digest of its contents: the event itself was edited


@dataclass(frozen=True, slots=True)
class ChainCheck:
    events: int  # events read, up to and including the first broken one
    first_broken_id: int | None
    broken: ChainBreak | None = None
    last_id: int | None = None  # the last event that held (the whole chain's head when intact)

    @property
    def intact(self) -> bool:
        return self.first_broken_id is None


def verify_chain(session: Session) -> ChainCheck:
    """Recompute every link in id order; report the first event whose link or hash does not hold, and which."""
    prev = GENESIS
    count = 0
    last: int | None = None
    with closing(repository.events_in_order(session)) as events:
        for event in events:
            count += 1
            want = _digest(prev, event.at, event.tag, event.actor, event.subject_type, event.subject_id, event.data)
            if event.prev_hash != prev:
                return ChainCheck(count, event.id, ChainBreak.LINK, last)
            if event.hash != want:
                return ChainCheck(count, event.id, ChainBreak.HASH, last)
            prev, last = event.hash, event.id
    return ChainCheck(count, None, None, last)


#: The most events a page of :func:`read_events` holds.
MAX_PAGE: Final = 200


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """The audit log's filters; None is "any". ``actor`` matches case-insensitively, ``tag``, ``subject_type`` and
    ``subject_id`` exactly; ``since <= at < until``."""

    actor: str | None = None
    tag: str | None = None
    subject_type: str | None = None
    subject_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditPage:
    events: tuple[AuditEvent, ...]  # newest first
    next_before: int | None  # pass as ``before`` for the next (older) page; None on the last page


def read_events(session: Session, query: AuditQuery, *, before: int | None = None, limit: int = 50) -> AuditPage:
    """One page of the events matching ``query`` with ids below ``before`` (None: from the newest), newest first;
    ``limit`` is held to 1..:data:`MAX_PAGE`. Keyset pages on the id: pages neither repeat nor skip an event while
    events are appended."""
    size = max(1, min(limit, MAX_PAGE))
    rows = repository.events_page(
        session,
        actor=query.actor,
        tag=query.tag,
        subject_type=query.subject_type,
        subject_id=query.subject_id,
        since=query.since,
        until=query.until,
        before_id=before,
        limit=size + 1,
    )
    events = tuple(rows[:size])
    return AuditPage(events, events[-1].id if len(rows) > size else None)
