"""The hash-chained audit log on real PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from verifier.audit.log import GENESIS, AuditTag, Entry, _digest, record_event, record_events, verify_chain
from verifier.audit.repository import MAX_LINKED
from verifier.db.engine import make_engine, upgrade_database
from verifier.db.models import AuditEvent

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _append(session: Session, n: int) -> list[AuditEvent]:
    return [
        record_event(
            session,
            tag=AuditTag.ATTESTATION_ACCEPTED,
            actor="worker",
            subject_type="attestation",
            subject_id=f"a{i}",
            data={"i": i, "reasons": []},
            at=T0 + timedelta(seconds=i),
        )
        for i in range(n)
    ]


def test_audit_chain_links_and_verifies(session: Session) -> None:
    # Other tests commit events to this database too; the new events link to whatever the chain head was.
    head = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)) or GENESIS
    before = verify_chain(session).events
    events = _append(session, 5)
    assert events[0].prev_hash == head
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
    check = verify_chain(session)
    assert (check.events, check.intact) == (before + 5, True)


def test_audit_chain_detects_edit(session: Session) -> None:
    events = _append(session, 4)
    session.execute(update(AuditEvent).where(AuditEvent.id == events[2].id).values(data={"i": 99, "reasons": []}))
    session.expire_all()
    check = verify_chain(session)
    assert check.first_broken_id == events[2].id


def test_audit_chain_detects_deletion(session: Session) -> None:
    events = _append(session, 4)
    session.delete(session.get_one(AuditEvent, events[1].id))  # appended by a Core statement: not the session's
    session.flush()
    session.expire_all()
    assert verify_chain(session).first_broken_id == events[2].id


def test_audit_event_survives_commit_and_reload(session: Session) -> None:
    event = _append(session, 1)[0]
    session.commit()  # a savepoint in the test transaction
    session.expire_all()
    again = session.get(AuditEvent, event.id)
    assert again is not None
    assert again.at == T0
    assert again.tag == "worker:attestation:accepted"


def test_audit_record_events_links_a_batch_after_the_head(session: Session) -> None:
    head = _append(session, 1)[0]
    batch = record_events(
        session,
        [
            Entry(AuditTag.ATTESTATION_ACCEPTED, "worker", "attestation", "b", {"n": 1}),
            Entry(AuditTag.LEASE_ISSUED, "worker", "lease", "l", {"n": 2}),
        ],
        at=T0,
    )
    assert [e.tag for e in batch] == ["worker:attestation:accepted", "worker:lease:issued"]
    assert batch[0].prev_hash == head.hash
    assert batch[1].prev_hash == batch[0].hash
    after = record_event(
        session, tag=AuditTag.LEASE_RELEASED, actor="enclave", subject_type="lease", subject_id="l", data={}, at=T0
    )
    assert after.prev_hash == batch[1].hash
    assert verify_chain(session).intact


def test_audit_record_events_hashes_in_postgresql_as_python_would(session: Session) -> None:
    """PostgreSQL links a batch itself (sha256 over the head's hash and the body Python serialised): each stored hash
    is the digest of the event as read back."""
    data = {"lease_id": str(GENESIS.hex()), "n": 2**70, "text": "é ✓"}
    batch = record_events(
        session,
        [Entry(AuditTag.LEASE_ISSUED, "worker", "lease", f"l{i}", data | {"i": i}) for i in range(3)],
        at=T0,
    )
    stored = session.execute(
        select(AuditEvent.id, AuditEvent.prev_hash, AuditEvent.hash)
        .where(AuditEvent.id.in_([e.id for e in batch]))
        .order_by(AuditEvent.id)
    ).all()
    assert [tuple(r) for r in stored] == [(e.id, e.prev_hash, e.hash) for e in batch]
    assert [e.hash for e in batch] == [
        _digest(e.prev_hash, T0, e.tag, e.actor, e.subject_type, e.subject_id, data | {"i": i})
        for i, e in enumerate(batch)
    ]


def test_audit_record_events_on_sqlite(tmp_path: Path) -> None:
    """The embedded profile: the head read and the links hashed in Python, then one INSERT; the chain verifies."""
    url = f"sqlite:///{tmp_path / 'keyward.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    try:
        with Session(engine) as s, s.begin():
            first = record_events(s, [Entry(AuditTag.LEASE_ISSUED, "worker", "lease", "l1", {"n": 1})], at=T0)
            second = record_events(
                s,
                [
                    Entry(AuditTag.ATTESTATION_ACCEPTED, "worker", "attestation", "a", {"t": T0}),
                    Entry(AuditTag.LEASE_ISSUED, "worker", "lease", "l2", {"n": 2}),
                ],
                at=T0 + timedelta(seconds=1),
            )
            assert (first[0].prev_hash, second[0].prev_hash, second[1].prev_hash) == (
                GENESIS,
                first[0].hash,
                second[0].hash,
            )
            check = verify_chain(s)
            assert (check.intact, check.events) == (True, 3)
    finally:
        engine.dispose()


def test_audit_record_events_many_linked_after_the_head(session: Session) -> None:
    """More events than PostgreSQL chains in one statement: the head read, hashed here, one INSERT; still linked."""
    head = _append(session, 1)[0]
    entries = [Entry(AuditTag.LEASE_REVOKED, "staff:ops", "lease", f"L{i}", {"i": i}) for i in range(MAX_LINKED + 3)]
    batch = record_events(session, entries, at=T0)
    assert batch[0].prev_hash == head.hash
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(batch))
    assert [e.id for e in batch] == sorted(e.id for e in batch)
    assert verify_chain(session).intact
