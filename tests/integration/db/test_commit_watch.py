"""The commit watch behind the generation caches (verifier/db/commit_watch.py) on real PostgreSQL: what counts as a
change to a watched table, and that the callback runs after the commit only."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, delete, select, text, update
from sqlalchemy.orm import Session

from tests.support.factories import T0
from verifier.db.commit_watch import CommitWatch, database_key
from verifier.db.models import Customer, CustomerStatus


class _Seen:
    def __init__(self) -> None:
        self.commits = 0

    def __call__(self, _session: Session) -> None:
        self.commits += 1


@pytest.fixture
def customer(engine: Engine) -> Iterator[uuid.UUID]:
    """A customer row of this test's own, deleted after it."""
    with Session(engine) as s:
        row = Customer(name=f"watched-{uuid.uuid4().hex[:8]}", status=CustomerStatus.ACTIVE, created_at=T0)
        s.add(row)
        s.commit()
        ident = row.id
    yield ident
    with Session(engine) as s:
        s.execute(delete(Customer).where(Customer.id == ident))
        s.commit()


def _watch(*, text_statements: bool = False) -> tuple[CommitWatch, _Seen]:
    seen = _Seen()
    watch = CommitWatch(f"test-{uuid.uuid4().hex[:6]}", (Customer,), seen, text_statements=text_statements)
    watch.install()
    return watch, seen


def test_commit_watch_flushed_change_seen_after_commit(engine: Engine, customer: uuid.UUID) -> None:
    watch, seen = _watch()
    try:
        with Session(engine) as s:
            row = s.get(Customer, customer)
            assert row is not None
            row.status = CustomerStatus.SUSPENDED
            s.flush()
            assert seen.commits == 0  # not before the commit
            s.commit()
        assert seen.commits == 1
    finally:
        watch.remove()


def test_commit_watch_update_statement_seen(engine: Engine, customer: uuid.UUID) -> None:
    watch, seen = _watch()
    try:
        with Session(engine) as s:
            s.execute(update(Customer).where(Customer.id == customer).values(status=CustomerStatus.SUSPENDED))
            s.commit()
        assert seen.commits == 1
    finally:
        watch.remove()


def test_commit_watch_rolled_back_change_not_seen(engine: Engine, customer: uuid.UUID) -> None:
    watch, seen = _watch()
    try:
        with Session(engine) as s:
            s.execute(update(Customer).where(Customer.id == customer).values(status=CustomerStatus.SUSPENDED))
            s.rollback()
            s.execute(select(Customer.id))
            s.commit()
        assert seen.commits == 0
    finally:
        watch.remove()


def test_commit_watch_read_not_seen(engine: Engine, customer: uuid.UUID) -> None:
    watch, seen = _watch(text_statements=True)
    try:
        with Session(engine) as s:
            s.execute(select(Customer).where(Customer.id == customer)).all()
            s.execute(text("SELECT count(*) FROM customers")).scalar()
            s.commit()
        assert seen.commits == 0
    finally:
        watch.remove()


def test_commit_watch_text_write_seen_when_asked(engine: Engine, customer: uuid.UUID) -> None:
    watch, seen = _watch(text_statements=True)
    try:
        with Session(engine) as s:
            s.execute(text("UPDATE customers SET status = 'suspended' WHERE id = :id"), {"id": customer})
            s.commit()
        assert seen.commits == 1
    finally:
        watch.remove()


def test_commit_watch_text_statement_ignored_unless_asked(engine: Engine, customer: uuid.UUID) -> None:
    watch, seen = _watch()
    try:
        with Session(engine) as s:  # e.g. a decision's WITH ... SELECT naming a watched table
            s.execute(
                text("WITH c AS (SELECT id FROM customers WHERE id = :id) SELECT count(*) FROM c"), {"id": customer}
            )
            s.commit()
        assert seen.commits == 0
    finally:
        watch.remove()


def test_database_key_ignores_driver_and_credentials() -> None:
    assert database_key("postgresql+psycopg://a:b@h:5432/d") == database_key("postgresql://h:5432/d")
