"""The customers list on PostgreSQL, below HTTP: seats counted as the entitlement service counts them whatever the
page size, and every page read in one statement however many customers, entitlements and leases it shows (no
query per row). The rows are made in the test's rolled-back session; each query searches for the test's token."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from tests.integration.dashboard.world import NOW, make_deployment
from tests.support.factories import make_customer, make_entitlement, make_lease, make_model, make_model_version
from verifier.dashboard.customers.service import customer_detail, list_customers
from verifier.db.models import EntitlementStatus, LeaseStatus


@contextmanager
def _statements(session: Session) -> Iterator[list[str]]:
    """The SQL statements ``session`` sends inside the block."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _fleet(session: Session, token: str, customers: int) -> None:
    """``customers`` customers, each with two entitlements (one revoked) and three deployments on the active one:
    two holding a live lease, one whose live lease has expired."""
    model = make_model(session, name=f"m-{token}")
    version = make_model_version(session, model)
    for i in range(customers):
        customer = make_customer(session, name=f"c{i:03d}-{token}")
        active = make_entitlement(session, customer=customer, model=model, seats=4, valid_from=NOW - timedelta(1))
        make_entitlement(session, customer=customer, model=model, seats=9, status=EntitlementStatus.REVOKED)
        for n, ttl in enumerate((timedelta(hours=1), timedelta(hours=1), -timedelta(minutes=1))):
            deployment = make_deployment(session, active, f"d{n}-{i}-{token}")
            make_lease(session, deployment, version, now=NOW - timedelta(minutes=5), ttl=ttl)
        make_lease(session, deployment, version, now=NOW - timedelta(hours=2), status=LeaseStatus.REVOKED)


def test_list_customers_reads_a_page_in_one_statement(session: Session) -> None:
    token = uuid.uuid4().hex[:10]
    _fleet(session, token, 30)
    session.flush()

    with _statements(session) as sent:
        page = list_customers(session, NOW, search=token, limit=25)

    assert len(sent) == 1
    assert len(page.rows) == 25
    assert page.next_cursor is not None
    for row in page.rows:
        assert (row.entitlements, row.active_entitlements) == (2, 1)
        assert (row.seats_used, row.seats_allowed, row.live_leases) == (2, 4, 2)
    rest = list_customers(session, NOW, search=token, cursor=page.next_cursor, limit=25)
    assert [r.name for r in rest.rows] == [f"c{i:03d}-{token}" for i in range(25, 30)]
    assert rest.next_cursor is None


def test_customer_detail_agrees_with_the_list(session: Session) -> None:
    token = uuid.uuid4().hex[:10]
    _fleet(session, token, 1)
    session.flush()
    (row,) = list_customers(session, NOW, search=token).rows

    detail = customer_detail(session, row.id, NOW)

    assert (detail.seats_used, detail.seats_allowed, detail.live_leases) == (2, 4, 2)
    assert detail.deployments == 3
    active = next(e for e in detail.entitlements if e.status == EntitlementStatus.ACTIVE)
    assert (active.seats_used, active.live_leases, active.seat_percent) == (2, 2, 50)
