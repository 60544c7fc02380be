"""Append-only audit log with a hash chain: each event stores the previous event's hash and its own.

``hash = SHA-256(prev_hash || canonical JSON of {at, tag, actor, subject_type, subject_id, data})``. Editing or
deleting any stored event breaks every later link, which :func:`verify_chain` detects. Appends serialise on a
transaction-scoped PostgreSQL advisory lock so concurrent writers cannot fork the chain. The caller owns the
session and commits (the event is part of the same transaction as the decision it records). The SQL is in
:mod:`verifier.audit.repository`.

Reading: :func:`verify_chain` walks the whole chain, or only the events after a :class:`ChainCheckpoint` (an event
already verified and its hash, kept by the caller: :class:`verifier.audit.checkpoint.ChainWatch`);
:func:`read_events` gives one filtered keyset page of events, newest first (the dashboard's audit log).
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
from verifier.db.rows import entity

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
    ENTITLEMENT_TERMS_CHANGED = "admin:entitlement:terms_changed"
    CUSTOMER_CREATED = "admin:customer:created"
    CUSTOMER_RENAMED = "admin:customer:renamed"
    CUSTOMER_STATUS_CHANGED = "admin:customer:status_changed"
    DEPLOYMENT_STATUS_CHANGED = "admin:deployment:status_changed"  # suspended or reinstated by staff
    CREDENTIAL_REVOKED = "admin:credential:revoked"
    CREDENTIAL_ROTATED = "admin:credential:rotated"  # a successor issued, this one set to expire after a grace period
    STAFF_CREATED = "cli:staff:created"
    STAFF_LOGIN_SUCCEEDED = "dashboard:staff:login_succeeded"
    STAFF_LOGIN_FAILED = "dashboard:staff:login_failed"
    STAFF_LOCKED_OUT = "dashboard:staff:locked_out"
    STAFF_LOGGED_OUT = "dashboard:staff:logged_out"
    EVIDENCE_PURGED = "beat:evidence:purged"  # the retention policy emptied old requests' raw evidence
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


def entry_hash(prev: bytes, at: datetime, entry: Entry) -> bytes:
    """The hash an event of ``entry`` at ``at`` following an event hashed ``prev`` stores (its data as stored:
    JSON values only). For writers that link rows in bulk (the test harness's fleet); appends use
    :func:`record_events`."""
    return _digest(prev, at, entry.tag.value, entry.actor, entry.subject_type, entry.subject_id, entry.data)


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
    """Append ``entries`` in order, linked to each other, after the chain's head, under one lock: two statements on
    PostgreSQL for a few events (the lock; the head read, the links hashed and every event inserted in one), three
    for many and on SQLite (the lock; the head; the links hashed here, every event inserted in one). Each
    event's data is serialised once: the canonical JSON that is hashed is what is stored. Sent now; never commits:
    the events belong to the caller's transaction, which holds the lock until it ends. Returns the events as
    stored, untracked by the session (their ``data`` as given)."""
    repository.lock_appends(session)
    rows = _rows(entries, at)
    if repository.links_in_sql(session, len(rows)):
        linked = repository.append_linked(session, at=at, genesis=GENESIS, events=rows)
    else:
        linked = _link_here(session, at, rows)
    return [
        entity(
            session,
            AuditEvent,
            {
                "id": ident,
                "at": at,
                "tag": e.tag.value,
                "actor": e.actor,
                "subject_type": e.subject_type,
                "subject_id": e.subject_id,
                "data": e.data,
                "prev_hash": prev,
                "hash": digest,
            },
        )
        for (ident, prev, digest), e in zip(linked, entries, strict=True)
    ]


def append_events(session: Session, entries: Sequence[Entry], *, at: datetime) -> None:
    """:func:`record_events`, reading nothing back: on PostgreSQL, for at most :data:`~verifier.audit.repository.
    MAX_LINKED` entries, two statements whose results are not read, so they may be sent with the caller's other
    writes in one round trip (:func:`verifier.db.pipeline.sent_together`: the lock is taken before the append's
    snapshot, as when each waits). Elsewhere, or for more entries, :func:`record_events` (which reads)."""
    if not repository.links_in_sql(session, len(entries)):
        record_events(session, entries, at=at)
        return
    repository.lock_appends(session)
    repository.append_linked_unread(session, at=at, genesis=GENESIS, events=_rows(entries, at))


def _rows(entries: Sequence[Entry], at: datetime) -> list[dict[str, Any]]:
    """The appended events' columns as the repository takes them, each event's data serialised once (the
    canonical JSON that is hashed is what is stored)."""
    stamp = _json(at.isoformat())
    rows = []
    for e in entries:
        data_json = canonical_json(e.data)
        rows.append(
            {
                "tag": e.tag.value,
                "actor": e.actor,
                "subject_type": e.subject_type,
                "subject_id": e.subject_id,
                "data": data_json,
                "body": _body(stamp, e.tag.value, e.actor, e.subject_type, e.subject_id, data_json),
            }
        )
    return rows


def _link_here(session: Session, at: datetime, rows: Sequence[dict[str, Any]]) -> list[tuple[int, bytes, bytes]]:
    """The links hashed here after a read of the head, and the events inserted (where the database cannot hash):
    (id, prev hash, hash) of each, in order."""
    prev = repository.head_hash(session) or GENESIS
    links = []
    for row in rows:
        digest = hashlib.sha256(prev + row["body"]).digest()
        links.append((prev, digest))
        prev = digest
    ids = repository.insert_events(
        session,
        [
            {
                "at": at,
                "tag": row["tag"],
                "actor": row["actor"],
                "subject_type": row["subject_type"],
                "subject_id": row["subject_id"],
                "data_json": row["data"],
                "prev_hash": link[0],
                "hash": link[1],
            }
            for row, link in zip(rows, links, strict=True)
        ],
    )
    return [(ident, p, h) for ident, (p, h) in zip(ids, links, strict=True)]


def canonical_json(data: object) -> str:
    """``data`` as the chain hashes it (keys sorted, no spaces, anything not JSON as its ``str``)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


_json: Final = json.JSONEncoder().encode  # one string as JSON (ASCII, escaped as json.dumps does)


def _body(stamp: str, tag: str, actor: str, subject_type: str, subject_id: str, data_json: str) -> bytes:
    """What :func:`_digest` hashes after ``prev``, from the parts already as JSON (``stamp``: the time's ISO
    string as JSON; ``data_json``: :func:`canonical_json` of the data): the same bytes, the data serialised once."""
    return (
        f'{{"actor":{_json(actor)},"at":{stamp},"data":{data_json},"subject_id":{_json(subject_id)},'
        f'"subject_type":{_json(subject_type)},"tag":{_json(tag)}}}'
    ).encode()


class ChainBreak(StrEnum):
    """Why the first broken event does not hold."""

    LINK = "link"  # its prev_hash is not the previous event's hash: an event before it was removed or inserted
    HASH = "hash"  # its hash is not the digest of its contents: the event itself was edited


@dataclass(frozen=True, slots=True)
class ChainCheckpoint:
    """An event a walk verified, and its hash: a later walk starts after it, linking the next event to ``hash``.
    ``events``: how many events up to and including it verified."""

    last_id: int
    hash: bytes
    events: int


@dataclass(frozen=True, slots=True)
class ChainCheck:
    events: int  # events verified before the first broken one, plus that one (the whole chain when intact)
    first_broken_id: int | None
    broken: ChainBreak | None = None
    last_id: int | None = None  # the last event that held (the whole chain's head when intact)
    last_hash: bytes | None = None  # its hash
    #: The checkpoint the walk started after (None: from the first event); the events up to it were not read.
    resumed_after: ChainCheckpoint | None = None
    read: int = 0  # events read by this walk

    @property
    def intact(self) -> bool:
        return self.first_broken_id is None

    def checkpoint(self) -> ChainCheckpoint | None:
        """The last event that held, for the next walk to start after; None if none did."""
        if self.last_id is None or self.last_hash is None:
            return None
        return ChainCheckpoint(self.last_id, self.last_hash, self.events - (0 if self.intact else 1))


def verify_chain(session: Session, *, after: ChainCheckpoint | None = None) -> ChainCheck:
    """Recompute every link in id order, from the first event or from the one after ``after`` (its next event must
    link to ``after.hash``); report the first event whose link or hash does not hold, and which.

    Resuming after a checkpoint reads only the newer events and still finds any break among them, or any event
    removed or inserted right after the checkpoint. The checkpoint's own event is read again first: if it is gone
    or no longer digests to ``after.hash`` (edited, or the log restored from elsewhere), the walk starts from the
    first event instead. An edit of an event before the checkpoint's is not seen (nothing below it is read)."""
    if after is not None and not _still_holds(session, after):
        after = None
    prev = after.hash if after else GENESIS
    count = after.events if after else 0
    last: int | None = after.last_id if after else None
    read = 0
    with closing(repository.events_in_order(session, after_id=after.last_id if after else None)) as events:
        for ident, at, tag, actor, subject_type, subject_id, data, prev_hash, stored in events:
            count += 1
            read += 1
            if prev_hash != prev:
                return ChainCheck(count, ident, ChainBreak.LINK, last, _head(last, prev), after, read)
            if stored != _digest(prev, at, tag, actor, subject_type, subject_id, data):
                return ChainCheck(count, ident, ChainBreak.HASH, last, _head(last, prev), after, read)
            prev, last = stored, ident
    return ChainCheck(count, None, None, last, _head(last, prev), after, read)


def _head(last: int | None, prev: bytes) -> bytes | None:
    return None if last is None else prev


def _still_holds(session: Session, checkpoint: ChainCheckpoint) -> bool:
    """The checkpoint's event is still stored, with its hash, and that hash is still the digest of its contents."""
    event = repository.event_by_id(session, checkpoint.last_id)
    return (
        event is not None
        and event.hash == checkpoint.hash
        and _digest(event.prev_hash, event.at, event.tag, event.actor, event.subject_type, event.subject_id, event.data)
        == checkpoint.hash
    )


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
