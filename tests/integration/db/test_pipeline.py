"""Writes sent together (:func:`verifier.db.pipeline.sent_together`) on real PostgreSQL: pipelined while the block
runs, applied in order in the caller's transaction, and a failure raised in SQLAlchemy's error tree wherever
psycopg reports it; on SQLite the block changes nothing."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from psycopg import pq
from sqlalchemy import create_engine, exc, select, text
from sqlalchemy.orm import Session

from tests.support.factories import T0
from verifier.db.models import Customer, CustomerStatus
from verifier.db.pipeline import sent_together

_INSERT = text("INSERT INTO customers (id, name, status, created_at) VALUES (:id, :name, :status, :at)")


def _row(name: str) -> dict[str, object]:
    return {"id": uuid.uuid4(), "name": name, "status": CustomerStatus.ACTIVE.value, "at": T0}


def test_sent_together_pipelines_until_the_block_ends(session: Session) -> None:
    driver = session.connection().connection.driver_connection
    with sent_together(session) as together:
        session.execute(_INSERT, _row("pipelined-a"))
        status = driver.pgconn.pipeline_status  # type: ignore[union-attr]
    assert together
    assert status == pq.PipelineStatus.ON
    assert driver.pgconn.pipeline_status == pq.PipelineStatus.OFF  # type: ignore[union-attr]


def test_sent_together_applies_writes_in_order_in_the_transaction(session: Session) -> None:
    names = [f"together-{i}-{uuid.uuid4().hex[:6]}" for i in range(3)]
    with sent_together(session):
        for name in names:
            session.execute(_INSERT, _row(name))
        session.execute(text("UPDATE customers SET status = 'suspended' WHERE name = :n"), {"n": names[0]})
    stored = dict(session.execute(select(Customer.name, Customer.status).where(Customer.name.in_(names))).all())
    assert stored == {
        names[0]: CustomerStatus.SUSPENDED,
        names[1]: CustomerStatus.ACTIVE,
        names[2]: CustomerStatus.ACTIVE,
    }


def test_sent_together_last_statement_failing_is_an_integrity_error(session: Session) -> None:
    row = _row(f"clash-{uuid.uuid4().hex[:6]}")
    session.execute(_INSERT, row)
    with pytest.raises(exc.IntegrityError), sent_together(session):
        session.execute(_INSERT, {**row, "id": uuid.uuid4()})  # the same name: unique violation at the sync


def test_sent_together_earlier_statement_failing_is_an_integrity_error(session: Session) -> None:
    row = _row(f"clash-{uuid.uuid4().hex[:6]}")
    session.execute(_INSERT, row)

    def clash_then_more() -> None:
        with sent_together(session):
            session.execute(_INSERT, {**row, "id": uuid.uuid4()})
            session.execute(_INSERT, _row(f"after-{uuid.uuid4().hex[:6]}"))

    with pytest.raises(exc.IntegrityError):
        clash_then_more()


def test_sent_together_sqlite_sends_as_usual(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+pysqlite:///{tmp_path / 'plain.db'}")
    try:
        with Session(engine) as session:
            session.execute(text("CREATE TABLE t (x INTEGER)"))
            with sent_together(session) as together:
                session.execute(text("INSERT INTO t VALUES (1)"))
            assert not together
            assert session.scalar(text("SELECT count(*) FROM t")) == 1
    finally:
        engine.dispose()
