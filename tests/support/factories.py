"""Small factories for database rows in integration tests: each adds, flushes and returns one row.

Names are made unique with a random suffix, so rows committed by one test (cross-connection and concurrency tests)
never collide with another's. Nothing here commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from verifier.db.models import (
    Customer,
    CustomerStatus,
    Deployment,
    Entitlement,
    EntitlementStatus,
    Lease,
    LeaseStatus,
    Model,
    ModelVersion,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _suffix() -> str:
    return uuid.uuid4().hex[:12]


def make_customer(session: Session, *, name: str | None = None, now: datetime = T0) -> Customer:
    customer = Customer(name=name or f"customer-{_suffix()}", status=CustomerStatus.ACTIVE, created_at=now)
    session.add(customer)
    session.flush()
    return customer


def make_model(session: Session, *, name: str | None = None, now: datetime = T0) -> Model:
    model = Model(name=name or f"model-{_suffix()}", created_at=now)
    session.add(model)
    session.flush()
    return model


def make_model_version(session: Session, model: Model, *, version: str = "1.0", now: datetime = T0) -> ModelVersion:
    mv = ModelVersion(model_id=model.id, version=version, created_at=now)
    session.add(mv)
    session.flush()
    return mv


def make_entitlement(
    session: Session,
    *,
    customer: Customer | None = None,
    model: Model | None = None,
    seats: int = 1,
    max_gpus: int = 8,
    allowed_platforms: Sequence[str] = ("tdx", "snp", "nvidia"),
    allowed_versions: Sequence[str] = (),
    status: EntitlementStatus = EntitlementStatus.ACTIVE,
    valid_from: datetime = T0 - timedelta(days=30),
    valid_until: datetime | None = T0 + timedelta(days=365),
    lease_ttl_seconds: int = 3600,
    now: datetime = T0,
) -> Entitlement:
    """An active entitlement valid around :data:`T0`; creates its customer and model unless given."""
    customer = customer or make_customer(session, now=now)
    model = model or make_model(session, now=now)
    entitlement = Entitlement(
        customer_id=customer.id,
        model_id=model.id,
        allowed_versions=list(allowed_versions),
        allowed_platforms=list(allowed_platforms),
        seats=seats,
        max_gpus=max_gpus,
        lease_ttl_seconds=lease_ttl_seconds,
        status=status,
        valid_from=valid_from,
        valid_until=valid_until,
        created_at=now,
    )
    session.add(entitlement)
    session.flush()
    return entitlement


def make_lease(
    session: Session,
    deployment: Deployment,
    model_version: ModelVersion,
    *,
    now: datetime = T0,
    ttl: timedelta = timedelta(hours=1),
    status: LeaseStatus = LeaseStatus.LIVE,
    gpus: int = 0,
) -> Lease:
    """A lease for ``deployment`` issued at ``now`` and expiring ``ttl`` later (a negative ttl: already expired)."""
    lease = Lease(
        entitlement_id=deployment.entitlement_id,
        deployment_id=deployment.id,
        model_version_id=model_version.id,
        enclave_key_thumbprint=uuid.uuid4().hex,
        gpus=gpus,
        status=status,
        issued_at=now,
        expires_at=now + ttl,
        renew_after=now + ttl / 2,
    )
    session.add(lease)
    session.flush()
    return lease


def delete_entitlement_tree(session: Session, entitlement: Entitlement, *model_versions: ModelVersion) -> None:
    """Delete an entitlement with its leases, deployments, customer, model and the given model versions.

    For tests that commit (the ``session`` fixture rolls back by itself); the caller commits.
    """
    session.execute(delete(Lease).where(Lease.entitlement_id == entitlement.id))
    session.execute(delete(Deployment).where(Deployment.entitlement_id == entitlement.id))
    session.execute(delete(Entitlement).where(Entitlement.id == entitlement.id))
    for mv in model_versions:
        session.execute(delete(ModelVersion).where(ModelVersion.id == mv.id))
    session.execute(delete(Model).where(Model.id == entitlement.model_id))
    session.execute(delete(Customer).where(Customer.id == entitlement.customer_id))
