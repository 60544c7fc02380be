"""Entitlement summaries for billing: customer, model, seats, validity, status and live leases, in id order.

Read-only: takes the caller's session and ``now``; never writes or commits. The SQL is in
:mod:`verifier.billing.repository`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from verifier.billing import repository
from verifier.db.models import Entitlement, EntitlementStatus


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
    rows = repository.entitlements_with_names(session, customer_id=customer_id, after=after, limit=limit)
    return _summaries(session, now, rows)


def get_entitlement(
    session: Session, entitlement_id: uuid.UUID, *, now: datetime, customer_id: uuid.UUID | None = None
) -> EntitlementSummary | None:
    """The entitlement ``entitlement_id`` (only if it belongs to ``customer_id`` when given), else None."""
    rows = repository.entitlements_with_names(session, entitlement_id=entitlement_id, customer_id=customer_id, limit=1)
    found = _summaries(session, now, rows)
    return found[0] if found else None


def _summaries(
    session: Session, now: datetime, rows: Sequence[tuple[Entitlement, str, str]]
) -> list[EntitlementSummary]:
    live = repository.live_lease_counts(session, [e.id for e, _, _ in rows], now)
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
