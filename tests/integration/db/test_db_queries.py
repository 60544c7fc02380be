"""The shared repository helpers on real PostgreSQL: a clashing insert is a 409 that undoes only its own savepoint
(the request's transaction and its earlier writes stay usable), a missing row is a 404, a page skips None filters."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.support.factories import T0, make_customer
from verifier.db.models import Customer, CustomerStatus
from verifier.db.queries import equals, get_or_404, insert_unique, page
from verifier.errors import Code, Conflict, NotFound


def test_insert_unique_clash_is_a_conflict_and_the_transaction_goes_on(session: Session) -> None:
    earlier = make_customer(session)
    clash = Customer(name=earlier.name, status=CustomerStatus.ACTIVE, created_at=T0)
    with pytest.raises(Conflict) as exc:
        insert_unique(session, clash, "a customer with this name")
    assert (exc.value.code, exc.value.message) == (Code.RESOURCE_CONFLICT, "a customer with this name already exists")
    # The caller's transaction is intact: its earlier row is still there, and it can write again.
    assert session.get(Customer, earlier.id) is earlier
    later = Customer(name=f"later-{uuid.uuid4().hex}", status=CustomerStatus.ACTIVE, created_at=T0)
    insert_unique(session, later, "a customer with this name")
    assert session.scalar(select(Customer.id).where(Customer.id == later.id)) == later.id


def test_get_or_404_missing_row(session: Session) -> None:
    ident = uuid.uuid4()
    with pytest.raises(NotFound) as exc:
        get_or_404(session, Customer, ident, "customer")
    assert (exc.value.code, exc.value.actual) == (Code.RESOURCE_NOT_FOUND, str(ident))


def test_page_skips_none_filters(session: Session) -> None:
    mine, _ = make_customer(session), make_customer(session)
    query = select(Customer).order_by(Customer.created_at, Customer.id)
    assert page(session, query, where=(equals(Customer.id, mine.id),), limit=10, offset=0) == [mine]
    assert len(page(session, query, where=(equals(Customer.id, None),), limit=2, offset=0)) == 2
