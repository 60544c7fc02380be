"""The audit chain checked from a checkpoint (:class:`verifier.audit.checkpoint.ChainWatch`), on a database of its
own (the chain is the whole log): it reads only the events after its checkpoint, finds every break there exactly as
a full walk does, notices its own event changed, and (its stated limit) does not see an edit below it until reset."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, create_engine, delete, update
from sqlalchemy.orm import Session

from tests.support.databases import migrated_database
from verifier.audit.checkpoint import ChainWatch
from verifier.audit.log import AuditTag, ChainBreak, Entry, record_events, verify_chain
from verifier.db.models import AuditEvent

T0 = datetime(2030, 2, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    """This module's own database (the ``session`` fixture runs on it)."""
    with migrated_database("keyward_chain_watch") as url:
        eng = create_engine(url)
        yield eng
        eng.dispose()


def _append(session: Session, n: int, start: int = 0) -> list[int]:
    entries = [Entry(AuditTag.LEASE_REVOKED, "staff:ops", "lease", f"L{start + i}", {"n": start + i}) for i in range(n)]
    return [e.id for e in record_events(session, entries, at=T0 + timedelta(minutes=start))]


def test_chain_watch_walks_everything_once_then_only_new_events(session: Session) -> None:
    first = _append(session, 5)
    watch = ChainWatch()
    full = watch.check(session, T0)
    assert (full.intact, full.events, full.read, full.resumed_after) == (True, 5, 5, None)
    newer = _append(session, 2, start=5)
    later = watch.check(session, T0)
    assert (later.intact, later.events, later.read, later.last_id) == (True, 7, 2, newer[-1])
    assert later.resumed_after is not None
    assert later.resumed_after.last_id == first[-1]
    assert watch.check(session, T0).read == 0


def test_chain_watch_finds_an_edit_after_the_checkpoint(session: Session) -> None:
    _append(session, 3)
    watch = ChainWatch()
    watch.check(session, T0)
    newer = _append(session, 3, start=3)
    session.execute(update(AuditEvent).where(AuditEvent.id == newer[1]).values(actor="staff:mallory"))
    check = watch.check(session, T0)
    assert (check.first_broken_id, check.broken, check.last_id, check.events) == (
        newer[1], ChainBreak.HASH, newer[0], 5
    )  # fmt: skip
    assert watch.checkpoint is not None
    assert watch.checkpoint.last_id == newer[0]
    assert watch.check(session, T0).first_broken_id == newer[1]  # still seen on the next view


def test_chain_watch_finds_a_removal_right_after_the_checkpoint(session: Session) -> None:
    old = _append(session, 3)
    watch = ChainWatch()
    watch.check(session, T0)
    newer = _append(session, 2, start=3)
    session.execute(delete(AuditEvent).where(AuditEvent.id == newer[0]))
    check = watch.check(session, T0)
    assert (check.first_broken_id, check.broken, check.last_id) == (newer[1], ChainBreak.LINK, old[-1])


def test_chain_watch_walks_again_when_its_checkpoint_event_was_edited(session: Session) -> None:
    ids = _append(session, 4)
    watch = ChainWatch()
    watch.check(session, T0)
    session.execute(update(AuditEvent).where(AuditEvent.id == ids[-1]).values(data={"n": 99}))
    check = watch.check(session, T0)
    assert (check.first_broken_id, check.broken, check.resumed_after) == (ids[-1], ChainBreak.HASH, None)


def test_chain_watch_does_not_see_an_edit_below_its_checkpoint_until_reset(session: Session) -> None:
    ids = _append(session, 4)
    watch = ChainWatch()
    watch.check(session, T0)
    session.execute(update(AuditEvent).where(AuditEvent.id == ids[1]).values(actor="staff:mallory"))
    assert watch.check(session, T0).intact  # the stated limit: nothing below the checkpoint is read again
    watch.reset()
    assert watch.check(session, T0).first_broken_id == ids[1]


@pytest.mark.parametrize("tamper", ["edit", "remove", "relink"], ids=["edited-event", "removed-event", "edited-link"])
@pytest.mark.parametrize("position", [0, 1, 2, 3])
def test_chain_watch_agrees_with_a_full_walk_above_the_checkpoint(session: Session, tamper: str, position: int) -> None:
    _append(session, 3)
    watch = ChainWatch()
    watch.check(session, T0)
    newer = _append(session, 4, start=3)
    target = newer[position]
    if tamper == "edit":
        session.execute(update(AuditEvent).where(AuditEvent.id == target).values(subject_id="L-forged"))
    elif tamper == "remove":
        session.execute(delete(AuditEvent).where(AuditEvent.id == target))
    else:
        session.execute(update(AuditEvent).where(AuditEvent.id == target).values(prev_hash=bytes(32)))
    incremental, full = watch.check(session, T0), verify_chain(session)
    assert not full.intact or (tamper == "remove" and position == 3)  # removing the head leaves a valid chain
    assert (incremental.first_broken_id, incremental.broken, incremental.events, incremental.last_id) == (
        full.first_broken_id, full.broken, full.events, full.last_id
    )  # fmt: skip


def test_chain_walk_verifies_data_a_faster_parser_would_change(session: Session) -> None:
    """The walk reads each event's data as the driver decodes it (``json``): an integer past 64 bits (orjson turns
    it into a float), non-ASCII and control characters, and floats still digest as they were hashed."""
    data = {"big": 2**70, "text": "é ✓ \u0001", "floats": [0.1, 1e16, -0.0, 1.5e-7]}
    entries = [Entry(AuditTag.LEASE_REVOKED, "staff:ops", "lease", "L-odd", data)]
    [event] = record_events(session, entries, at=T0)
    check = verify_chain(session)
    assert (check.intact, check.last_id) == (True, event.id)
