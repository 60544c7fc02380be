"""All SQL of the dashboard's customer pages: the customers list with each one's entitlement and seat counts (one
statement per page), a customer's entitlements with their seats in use, its licence keys, the models and policies
an entitlement form offers, and the audit events about a customer and what it holds.

"Seats in use" is the entitlement service's notion (:mod:`verifier.entitlement.service`): the distinct deployments
holding a lease that is ``live`` and not yet expired. A customer's is the sum over its entitlements (a deployment
belongs to one entitlement). Reads only; the caller owns the session and never commits here.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, case, distinct, func, or_, select, tuple_
from sqlalchemy.orm import Session

from verifier.db.models import (
    ApiCredential,
    AppraisalPolicy,
    AuditEvent,
    CredentialKind,
    Customer,
    Deployment,
    Entitlement,
    EntitlementStatus,
    Lease,
    LeaseStatus,
    Model,
    ModelVersion,
)


def _like_escaped(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _live(now: datetime) -> tuple[Any, ...]:
    """A lease that holds a seat at ``now``: ``live`` and not yet expired."""
    return Lease.status == LeaseStatus.LIVE, Lease.expires_at > now


def customer_rows(
    session: Session, now: datetime, *, search: str | None, after: tuple[str, uuid.UUID] | None, limit: int
) -> Sequence[Row[Customer, int, int, int, int, int]]:
    """Up to ``limit`` customers in (name, id) order after the key ``after``, whose name contains ``search``
    (case-insensitive), each as (customer, entitlements, active entitlements, seats allowed by its active
    entitlements, seats in use, live leases). One statement: the page of customers first, then the counts of
    those customers only, so its cost follows the page, not the fleet."""
    where: list[Any] = []
    if search:
        where.append(Customer.name.ilike(_like_escaped(search), escape="\\"))
    if after is not None:
        where.append(tuple_(Customer.name, Customer.id) > tuple_(*after))
    paged = select(Customer.id).where(*where).order_by(Customer.name, Customer.id).limit(limit).cte("paged")
    active = Entitlement.status == EntitlementStatus.ACTIVE
    terms = (
        select(
            Entitlement.customer_id,
            func.count().label("entitlements"),
            func.count(case((active, 1))).label("active"),
            func.coalesce(func.sum(case((active, Entitlement.seats), else_=0)), 0).label("allowed"),
        )
        .join(paged, paged.c.id == Entitlement.customer_id)
        .group_by(Entitlement.customer_id)
        .subquery()
    )
    seats = (
        select(
            Entitlement.customer_id,
            func.count(distinct(Lease.deployment_id)).label("used"),
            func.count().label("leases"),
        )
        .join(paged, paged.c.id == Entitlement.customer_id)
        .join(Lease, Lease.entitlement_id == Entitlement.id)
        .where(*_live(now))
        .group_by(Entitlement.customer_id)
        .subquery()
    )
    return session.execute(
        select(
            Customer,
            func.coalesce(terms.c.entitlements, 0),
            func.coalesce(terms.c.active, 0),
            func.coalesce(terms.c.allowed, 0),
            func.coalesce(seats.c.used, 0),
            func.coalesce(seats.c.leases, 0),
        )
        .join(paged, paged.c.id == Customer.id)
        .outerjoin(terms, terms.c.customer_id == Customer.id)
        .outerjoin(seats, seats.c.customer_id == Customer.id)
        .order_by(Customer.name, Customer.id)
    ).all()


def customer(session: Session, customer_id: uuid.UUID) -> Customer | None:
    return session.get(Customer, customer_id)


def entitlement_rows(
    session: Session, customer_id: uuid.UUID, now: datetime
) -> Sequence[Row[Entitlement, str, str | None, int, int, int]]:
    """The customer's entitlements, newest first, each as (entitlement, model name, policy name or None, seats in
    use, live leases, deployments)."""
    live = (
        select(
            Lease.entitlement_id,
            func.count(distinct(Lease.deployment_id)).label("used"),
            func.count().label("leases"),
        )
        .join(Entitlement, Entitlement.id == Lease.entitlement_id)
        .where(Entitlement.customer_id == customer_id, *_live(now))
        .group_by(Lease.entitlement_id)
        .subquery()
    )
    deployments = (
        select(Deployment.entitlement_id, func.count().label("n"))
        .join(Entitlement, Entitlement.id == Deployment.entitlement_id)
        .where(Entitlement.customer_id == customer_id)
        .group_by(Deployment.entitlement_id)
        .subquery()
    )
    return session.execute(
        select(
            Entitlement,
            Model.name,
            AppraisalPolicy.name,
            func.coalesce(live.c.used, 0),
            func.coalesce(live.c.leases, 0),
            func.coalesce(deployments.c.n, 0),
        )
        .join(Model, Model.id == Entitlement.model_id)
        .outerjoin(AppraisalPolicy, AppraisalPolicy.id == Entitlement.policy_id)
        .outerjoin(live, live.c.entitlement_id == Entitlement.id)
        .outerjoin(deployments, deployments.c.entitlement_id == Entitlement.id)
        .where(Entitlement.customer_id == customer_id)
        .order_by(Entitlement.created_at.desc(), Entitlement.id)
    ).all()


def licence_keys(session: Session, customer_id: uuid.UUID, *, limit: int) -> list[ApiCredential]:
    """The customer's licence keys (``enclave`` credentials), live ones first, newest first."""
    return list(
        session.scalars(
            select(ApiCredential)
            .where(ApiCredential.customer_id == customer_id, ApiCredential.kind == CredentialKind.ENCLAVE)
            .order_by(ApiCredential.revoked_at.is_not(None), ApiCredential.created_at.desc(), ApiCredential.id)
            .limit(limit)
        )
    )


def licence_key(session: Session, credential_id: uuid.UUID) -> ApiCredential | None:
    return session.get(ApiCredential, credential_id)


def entitlement(session: Session, entitlement_id: uuid.UUID) -> Entitlement | None:
    return session.get(Entitlement, entitlement_id)


def model_name(session: Session, model_id: uuid.UUID) -> str | None:
    return session.scalar(select(Model.name).where(Model.id == model_id))


def model_versions(session: Session, *, limit: int) -> Sequence[Row[uuid.UUID, str, str | None]]:
    """(model id, model name, version or None), by model name then version creation: every model, with each of its
    versions (a model without one once, with None)."""
    return session.execute(
        select(Model.id, Model.name, ModelVersion.version)
        .outerjoin(ModelVersion, ModelVersion.model_id == Model.id)
        .order_by(Model.name, Model.id, ModelVersion.created_at, ModelVersion.version)
        .limit(limit)
    ).all()


def policies(session: Session, *, limit: int) -> Sequence[Row[uuid.UUID, str, str]]:
    """(policy id, name, platform), by name."""
    return session.execute(
        select(AppraisalPolicy.id, AppraisalPolicy.name, AppraisalPolicy.platform)
        .order_by(AppraisalPolicy.name)
        .limit(limit)
    ).all()


def audit_events_about(session: Session, subjects: Sequence[tuple[str, str]], *, limit: int) -> list[AuditEvent]:
    """The newest ``limit`` audit events whose (subject type, subject id) is one of ``subjects``."""
    if not subjects:
        return []
    return list(
        session.scalars(
            select(AuditEvent)
            .where(
                or_(
                    *(
                        and_(AuditEvent.subject_type == kind, AuditEvent.subject_id.in_(ids))
                        for kind, ids in _grouped(subjects).items()
                    )
                )
            )
            .order_by(AuditEvent.id.desc())
            .limit(limit)
        )
    )


def _grouped(subjects: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for kind, ident in subjects:
        grouped.setdefault(kind, []).append(ident)
    return grouped
