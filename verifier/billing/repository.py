"""All SQL of billing: the entitlement rows with their customer and model names, live-lease counts, and the
leases and decisions a usage query adds up.

Read-only: takes the caller's session; never writes or commits. What the figures mean is in
:mod:`verifier.billing.usage` and :mod:`verifier.billing.entitlements`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, func, or_, select
from sqlalchemy.orm import Session

from verifier.db.models import Attestation, AttestationStatus, Customer, Entitlement, Lease, LeaseStatus, Model


def entitlements_with_names(
    session: Session,
    *,
    entitlement_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
    after: uuid.UUID | None = None,
    limit: int,
) -> Sequence[Row[Entitlement, str, str]]:
    """(entitlement, customer name, model name) in entitlement id order, filtered by whichever is given."""
    where: list[ColumnElement[bool]] = []
    if entitlement_id is not None:
        where.append(Entitlement.id == entitlement_id)
    if customer_id is not None:
        where.append(Entitlement.customer_id == customer_id)
    if after is not None:
        where.append(Entitlement.id > after)
    return session.execute(
        select(Entitlement, Customer.name, Model.name)
        .join(Customer, Customer.id == Entitlement.customer_id)
        .join(Model, Model.id == Entitlement.model_id)
        .where(*where)
        .order_by(Entitlement.id)
        .limit(limit)
    ).all()


def live_lease_counts(session: Session, ids: list[uuid.UUID], now: datetime) -> dict[uuid.UUID, int]:
    """Per entitlement of ``ids``: its leases that are live and unexpired at ``now`` (absent: none)."""
    if not ids:
        return {}
    counts = session.execute(
        select(Lease.entitlement_id, func.count())
        .where(Lease.entitlement_id.in_(ids), Lease.status == LeaseStatus.LIVE, Lease.expires_at > now)
        .group_by(Lease.entitlement_id)
    )
    return {entitlement: int(count) for entitlement, count in counts.all()}


def _scope(customer_id: uuid.UUID | None, entitlement_id: uuid.UUID | None) -> list[ColumnElement[bool]]:
    where = []
    if customer_id is not None:
        where.append(Entitlement.customer_id == customer_id)
    if entitlement_id is not None:
        where.append(Entitlement.id == entitlement_id)
    return where


def leases_overlapping(
    session: Session,
    *,
    customer_id: uuid.UUID | None,
    entitlement_id: uuid.UUID | None,
    start: datetime,
    end: datetime,
    now: datetime,
) -> Iterable[Any]:
    """Leases whose attested time may overlap ``[start, end)``: (entitlement_id, customer_id, deployment_id, gpus,
    issued_at, expires_at, ended_at) rows."""
    return session.execute(
        select(
            Lease.entitlement_id,
            Entitlement.customer_id,
            Lease.deployment_id,
            Lease.gpus,
            Lease.issued_at,
            Lease.expires_at,
            Lease.ended_at,
        )
        .join(Entitlement, Entitlement.id == Lease.entitlement_id)
        .where(
            Lease.issued_at < end,
            Lease.issued_at < now,
            Lease.expires_at > start,
            *_scope(customer_id, entitlement_id),
        )
        .where(or_(Lease.ended_at.is_(None), Lease.ended_at > start))
    )


def decisions_between(
    session: Session,
    *,
    customer_id: uuid.UUID | None,
    entitlement_id: uuid.UUID | None,
    start: datetime,
    end: datetime,
) -> Iterable[Any]:
    """Accepted and rejected attestations and renewals decided in ``[start, end)``: (entitlement_id, customer_id,
    kind, status, decided_at) rows."""
    return session.execute(
        select(
            Attestation.entitlement_id,
            Entitlement.customer_id,
            Attestation.kind,
            Attestation.status,
            Attestation.decided_at,
        )
        .join(Entitlement, Entitlement.id == Attestation.entitlement_id)
        .where(Attestation.decided_at >= start, Attestation.decided_at < end, *_scope(customer_id, entitlement_id))
        .where(Attestation.status.in_([AttestationStatus.ACCEPTED, AttestationStatus.REJECTED]))
    )
