"""Entitlement summaries for billing: customer, model, seats, validity, status and live leases, in id order.

Read-only: takes the caller's session and ``now``; never writes or commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from verifier.db.models import Customer, Entitlement, EntitlementStatus, Lease, LeaseStatus, Model


@dataclass(frozen=True, slots=True)
class Named:
    id: uuid.UUID
    name: str


@dataclass(frozen=True, slots=True)
class EntitlementSummary:
    id: uuid.UUID
    customer: Named
    model: Named
    seats: int
    max_gpus: int
    allowed_platforms: list[str]
    allowed_versions: list[str]
    valid_from: datetime
    valid_until: datetime | None
    status: EntitlementStatus
    live_leases: int  # status live and expires_at > now


def list_entitlements(
    session: Session,
    *,
    now: datetime,
    customer_id: uuid.UUID | None = None,
    after: uuid.UUID | None = None,
    limit: int,
) -> list[EntitlementSummary]:
    """Up to ``limit`` entitlements with ids greater than ``after``, in id order, of one customer if given."""
    where = []
    if customer_id is not None:
        where.append(Entitlement.customer_id == customer_id)
    if after is not None:
        where.append(Entitlement.id > after)
    return _summaries(session, now, *where, limit=limit)


def get_entitlement(
    session: Session, entitlement_id: uuid.UUID, *, now: datetime, customer_id: uuid.UUID | None = None
) -> EntitlementSummary | None:
    """The entitlement ``entitlement_id`` (only if it belongs to ``customer_id`` when given), else None."""
    where = [Entitlement.id == entitlement_id]
    if customer_id is not None:
        where.append(Entitlement.customer_id == customer_id)
    found = _summaries(session, now, *where, limit=1)
    return found[0] if found else None


def _summaries(session: Session, now: datetime, *where: ColumnElement[bool], limit: int) -> list[EntitlementSummary]:
    rows = session.execute(
        select(Entitlement, Customer.name, Model.name)
        .join(Customer, Customer.id == Entitlement.customer_id)
        .join(Model, Model.id == Entitlement.model_id)
        .where(*where)
        .order_by(Entitlement.id)
        .limit(limit)
    ).all()
    live = _live_leases(session, [e.id for e, _, _ in rows], now)
    return [
        EntitlementSummary(
            id=e.id,
            customer=Named(e.customer_id, customer_name),
            model=Named(e.model_id, model_name),
            seats=e.seats,
            max_gpus=e.max_gpus,
            allowed_platforms=list(e.allowed_platforms),
            allowed_versions=list(e.allowed_versions),
            valid_from=e.valid_from,
            valid_until=e.valid_until,
            status=e.status,
            live_leases=live.get(e.id, 0),
        )
        for e, customer_name, model_name in rows
    ]


def _live_leases(session: Session, ids: list[uuid.UUID], now: datetime) -> dict[uuid.UUID, int]:
    if not ids:
        return {}
    counts = session.execute(
        select(Lease.entitlement_id, func.count())
        .where(Lease.entitlement_id.in_(ids), Lease.status == LeaseStatus.LIVE, Lease.expires_at > now)
        .group_by(Lease.entitlement_id)
    )
    return dict(counts.all())
