"""Admin: leases (list, revoke), deployments, and the attestation record (staff view)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import String, select
from sqlalchemy.sql.expression import cast

from verifier.api.admin._common import (
    Limit,
    Offset,
    _actor,
    _aware,
    _get,
    _now,
    _page,
)
from verifier.api.admin_schemas import (
    AttestationDetail,
    AttestationSummary,
    DeploymentOut,
    LeaseOut,
    Platform,
)
from verifier.api.deps import AdminDep, SessionDep
from verifier.audit.log import AuditTag, record_event
from verifier.db.models import (
    Attestation,
    AttestationStatus,
    Deployment,
    Entitlement,
    Lease,
    LeaseStatus,
    ModelVersion,
)
from verifier.errors import Code, Conflict

router = APIRouter()


# -- leases, deployments, attestations -------------------------------------------------------------------------


@router.get("/leases")
def list_leases(
    session: SessionDep,
    _: AdminDep,
    entitlement_id: uuid.UUID | None = None,
    status_: Annotated[LeaseStatus | None, Query(alias="status")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[LeaseOut]:
    query = select(Lease).order_by(Lease.issued_at.desc(), Lease.id)
    if entitlement_id is not None:
        query = query.where(Lease.entitlement_id == entitlement_id)
    if status_ is not None:
        query = query.where(Lease.status == status_)
    return [LeaseOut.model_validate(r) for r in _page(session, query, limit, offset)]


@router.post("/leases/{lease_id}/revoke")
def revoke_lease(lease_id: uuid.UUID, session: SessionDep, admin: AdminDep) -> LeaseOut:
    """End a live lease now; its seat frees and it cannot be renewed."""
    now = _now()
    lease = _get(session, Lease, lease_id, "lease", lock=True)
    if lease.status != LeaseStatus.LIVE:
        raise Conflict(
            Code.RESOURCE_CONFLICT, "only a live lease can be revoked", expected="live", actual=lease.status.value
        )
    lease.status = LeaseStatus.REVOKED
    lease.ended_at = now
    session.flush()
    record_event(
        session,
        tag=AuditTag.LEASE_REVOKED,
        actor=_actor(admin),
        subject_type="lease",
        subject_id=str(lease.id),
        data={"entitlement_id": lease.entitlement_id, "deployment_id": lease.deployment_id},
        at=now,
    )
    out = LeaseOut.model_validate(lease)
    session.commit()
    return out


@router.get("/deployments")
def list_deployments(
    session: SessionDep,
    _: AdminDep,
    entitlement_id: uuid.UUID | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[DeploymentOut]:
    query = select(Deployment).order_by(Deployment.name, Deployment.id)
    if entitlement_id is not None:
        query = query.where(Deployment.entitlement_id == entitlement_id)
    return [DeploymentOut.model_validate(r) for r in _page(session, query, limit, offset)]


@router.get("/attestations")
def list_attestations(
    session: SessionDep,
    _: AdminDep,
    customer_id: uuid.UUID | None = None,
    model_id: uuid.UUID | None = None,
    status_: Annotated[AttestationStatus | None, Query(alias="status")] = None,
    platform: Platform | None = None,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[AttestationSummary]:
    """Newest first. ``from`` is inclusive, ``to`` exclusive (both on ``created_at``)."""
    query = select(Attestation).order_by(Attestation.created_at.desc(), Attestation.id)
    if customer_id is not None:
        query = query.join(Entitlement, Entitlement.id == Attestation.entitlement_id).where(
            Entitlement.customer_id == customer_id
        )
    if model_id is not None:
        query = query.join(ModelVersion, ModelVersion.id == Attestation.model_version_id).where(
            ModelVersion.model_id == model_id
        )
    if status_ is not None:
        query = query.where(Attestation.status == status_)
    if platform is not None:
        # Portable (PostgreSQL and the SQLite profile): the JSON list's text holds the quoted platform name; the
        # names come from a fixed set without quotes or wildcards, so the match is exact.
        query = query.where(cast(Attestation.platforms, String).like(f'%"{platform}"%'))
    if from_ is not None:
        query = query.where(Attestation.created_at >= _aware(from_, "from"))
    if to is not None:
        query = query.where(Attestation.created_at < _aware(to, "to"))
    return [AttestationSummary.model_validate(r) for r in _page(session, query, limit, offset)]


@router.get("/attestations/{attestation_id}")
def get_attestation(attestation_id: uuid.UUID, session: SessionDep, _: AdminDep) -> AttestationDetail:
    att = _get(session, Attestation, attestation_id, "attestation", Code.ATTESTATION_NOT_FOUND)
    return AttestationDetail.model_validate(att)
