"""Licence checks and seat accounting for one entitlement.

:func:`check_entitlement` answers "may this request use this licence at all" (status, validity window, platform,
model version, GPU count). :func:`acquire_seat` answers "is a seat free for this deployment" and is race-free across
workers: it locks the entitlement row (``SELECT ... FOR UPDATE``), so every seat decision for one entitlement is
made one at a time and each sees the leases committed by the decisions before it.

A seat is held by a deployment with at least one lease that is ``live`` and not yet expired; a deployment holding
several such leases uses one seat. The caller owns the session: it must insert the new lease in the *same*
transaction as :func:`acquire_seat` and commit; the row lock is held until then. Nothing here commits. Rejections
raise :class:`~verifier.errors.NotEntitled` with an ``entitlement.*`` code.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import distinct, exists, func, select
from sqlalchemy.orm import Session

from verifier.db.models import Deployment, Entitlement, EntitlementStatus, Lease, LeaseStatus
from verifier.errors import Code, NotEntitled


def check_entitlement(
    session: Session,
    entitlement_id: uuid.UUID,
    *,
    platform: str | Sequence[str],
    model_version: str,
    gpus: int,
    now: datetime,
) -> Entitlement:
    """The entitlement, if it covers the request; raises on the first rule it breaks, in this order:

    1. it exists (``entitlement.not_found``);
    2. its status is ``active`` (``entitlement.inactive``);
    3. ``valid_from <= now`` (``entitlement.not_yet_valid``) and ``now < valid_until`` when set
       (``entitlement.expired``);
    4. every requested platform is in ``allowed_platforms``, and at least one is requested
       (``entitlement.platform_not_allowed``);
    5. ``model_version`` is in ``allowed_versions``, an empty list allowing every version
       (``entitlement.version_not_allowed``);
    6. ``gpus <= max_gpus`` (``entitlement.gpus_exceeded``).
    """
    entitlement = session.get(Entitlement, entitlement_id)
    if entitlement is None:
        raise NotEntitled(Code.ENTITLEMENT_NOT_FOUND, "no such entitlement", actual=entitlement_id)
    if entitlement.status != EntitlementStatus.ACTIVE:
        raise NotEntitled(
            Code.ENTITLEMENT_INACTIVE,
            "the entitlement is not active",
            expected=EntitlementStatus.ACTIVE.value,
            actual=entitlement.status.value,
        )
    if now < entitlement.valid_from:
        raise NotEntitled(
            Code.ENTITLEMENT_NOT_YET_VALID,
            "the entitlement is not valid yet",
            expected=f"at or after {entitlement.valid_from.isoformat()}",
            actual=now.isoformat(),
        )
    if entitlement.valid_until is not None and now >= entitlement.valid_until:
        raise NotEntitled(
            Code.ENTITLEMENT_EXPIRED,
            "the entitlement has expired",
            expected=f"before {entitlement.valid_until.isoformat()}",
            actual=now.isoformat(),
        )
    requested = [platform] if isinstance(platform, str) else list(platform)
    refused = [p for p in requested if p not in entitlement.allowed_platforms]
    if refused or not requested:
        raise NotEntitled(
            Code.ENTITLEMENT_PLATFORM_NOT_ALLOWED,
            "the entitlement does not cover this platform" if requested else "no platform given",
            expected=",".join(entitlement.allowed_platforms),
            actual=",".join(refused),
        )
    if entitlement.allowed_versions and model_version not in entitlement.allowed_versions:
        raise NotEntitled(
            Code.ENTITLEMENT_VERSION_NOT_ALLOWED,
            "the entitlement does not cover this model version",
            expected=",".join(entitlement.allowed_versions),
            actual=model_version,
        )
    if gpus > entitlement.max_gpus:
        raise NotEntitled(
            Code.ENTITLEMENT_GPUS_EXCEEDED,
            "more GPUs than the entitlement allows",
            expected=f"at most {entitlement.max_gpus}",
            actual=gpus,
        )
    return entitlement


def acquire_seat(session: Session, entitlement: Entitlement, deployment_name: str, *, now: datetime) -> Deployment:
    """The deployment ``deployment_name`` under ``entitlement``, created or touched, if it may hold a seat.

    1. Lock the entitlement row and re-read it (a concurrent suspension or seat change is seen).
    2. Find the deployment by (entitlement, name).
    3. If that deployment already holds a live, unexpired lease it keeps its seat; otherwise, if the number of
       distinct deployments holding one is ``>= seats``, raise ``entitlement.seats_exhausted``.
    4. Create the deployment (``first_attested_at = now``) or touch it (``last_attested_at = now``), and flush.

    A rejected request creates and changes nothing, so a committed rejection leaves no phantom deployment.
    """
    # 1. Serialise every seat decision for this entitlement until the caller's transaction ends.
    locked = session.scalars(
        select(Entitlement)
        .where(Entitlement.id == entitlement.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if locked is None:
        raise NotEntitled(Code.ENTITLEMENT_NOT_FOUND, "no such entitlement", actual=entitlement.id)
    if locked.status != EntitlementStatus.ACTIVE:
        raise NotEntitled(
            Code.ENTITLEMENT_INACTIVE,
            "the entitlement is not active",
            expected=EntitlementStatus.ACTIVE.value,
            actual=locked.status.value,
        )
    # 2.
    deployment = session.scalars(
        select(Deployment).where(Deployment.entitlement_id == locked.id, Deployment.name == deployment_name)
    ).one_or_none()
    # 3.
    holding = (
        Lease.entitlement_id == locked.id,
        Lease.status == LeaseStatus.LIVE,
        Lease.expires_at > now,
    )
    already_holds = deployment is not None and bool(
        session.scalar(select(exists().where(*holding, Lease.deployment_id == deployment.id)))
    )
    if not already_holds:
        in_use = session.scalar(select(func.count(distinct(Lease.deployment_id))).where(*holding)) or 0
        if in_use >= locked.seats:
            raise NotEntitled(
                Code.ENTITLEMENT_SEATS_EXHAUSTED,
                "every seat of the entitlement is held by another deployment",
                expected=f"fewer than {locked.seats} deployments with live leases",
                actual=in_use,
            )
    # 4.
    if deployment is None:
        deployment = Deployment(
            entitlement_id=locked.id, name=deployment_name, first_attested_at=now, last_attested_at=now
        )
        session.add(deployment)
    else:
        if deployment.first_attested_at is None:
            deployment.first_attested_at = now
        deployment.last_attested_at = now
    session.flush()
    return deployment
