"""Admin: leases (list, revoke), deployments, and the attestation record (staff view).

HTTP only: a revocation is :func:`verifier.attestation.leases.revoke_lease`; the reads are the attestation and
licensing repositories'.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from verifier.api.admin.common import PREFIX, Limit, Offset, actor, aware, now
from verifier.api.admin_schemas import (
    AttestationDetail,
    AttestationSummary,
    DeploymentOut,
    LeaseOut,
    Platform,
)
from verifier.api.deps import SessionDep
from verifier.api.roles import OperatorDep, ViewerDep
from verifier.attestation import leases
from verifier.attestation import repository as attestations
from verifier.db.models import AttestationStatus, LeaseStatus
from verifier.entitlement import repository as licensing_repository
from verifier.errors import Code, NotFound

router = APIRouter(prefix=PREFIX)


# -- leases, deployments, attestations -------------------------------------------------------------------------


@router.get("/leases")
def list_leases(
    session: SessionDep,
    _: ViewerDep,
    entitlement_id: uuid.UUID | None = None,
    status_: Annotated[LeaseStatus | None, Query(alias="status")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[LeaseOut]:
    rows = attestations.list_leases(session, entitlement_id=entitlement_id, status=status_, limit=limit, offset=offset)
    return [LeaseOut.model_validate(r) for r in rows]


@router.post("/leases/{lease_id}/revoke")
def revoke_lease(lease_id: uuid.UUID, session: SessionDep, admin: OperatorDep) -> LeaseOut:
    """End a live lease now; its seat frees and it cannot be renewed."""
    lease = leases.revoke_lease(session, lease_id, actor=actor(admin), now=now())
    return LeaseOut.model_validate(lease)


@router.get("/deployments")
def list_deployments(
    session: SessionDep,
    _: ViewerDep,
    entitlement_id: uuid.UUID | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[DeploymentOut]:
    rows = licensing_repository.list_deployments(session, entitlement_id=entitlement_id, limit=limit, offset=offset)
    return [DeploymentOut.model_validate(r) for r in rows]


@router.get("/attestations")
def list_attestations(
    session: SessionDep,
    _: ViewerDep,
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
    rows = attestations.list_attestations(
        session,
        customer_id=customer_id,
        model_id=model_id,
        status=status_,
        platform=platform,
        created_from=None if from_ is None else aware(from_, "from"),
        created_to=None if to is None else aware(to, "to"),
        limit=limit,
        offset=offset,
    )
    return [AttestationSummary.model_validate(r) for r in rows]


@router.get("/attestations/{attestation_id}")
def get_attestation(attestation_id: uuid.UUID, session: SessionDep, _: ViewerDep) -> AttestationDetail:
    att = attestations.get_attestation(session, attestation_id)
    if att is None:
        raise NotFound(Code.ATTESTATION_NOT_FOUND, "attestation not found", actual=attestation_id)
    return AttestationDetail.model_validate(att)
