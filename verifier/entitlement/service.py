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
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, distinct, exists, func, select, update
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
    """The entitlement, if it covers the request; raises on the first rule it breaks (``entitlement.not_found``
    if there is none, then the rules of :func:`check_entitlement_rules`, in their order)."""
    entitlement = session.get(Entitlement, entitlement_id)
    if entitlement is None:
        raise NotEntitled(Code.ENTITLEMENT_NOT_FOUND, "no such entitlement", actual=entitlement_id)
    check_entitlement_rules(entitlement, platform=platform, model_version=model_version, gpus=gpus, now=now)
    return entitlement


def check_entitlement_rules(
    entitlement: Entitlement, *, platform: str | Sequence[str], model_version: str, gpus: int, now: datetime
) -> None:
    """Raise on the first rule ``entitlement`` breaks for this request, in this order (no I/O):

    1. its status is ``active`` (``entitlement.inactive``);
    2. ``valid_from <= now`` (``entitlement.not_yet_valid``) and ``now < valid_until`` when set
       (``entitlement.expired``);
    3. every requested platform is in ``allowed_platforms``, and at least one is requested
       (``entitlement.platform_not_allowed``);
    4. ``model_version`` is in ``allowed_versions``, an empty list allowing every version
       (``entitlement.version_not_allowed``);
    5. ``gpus <= max_gpus`` (``entitlement.gpus_exceeded``).
    """
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


# The seat path's statements, built once (a decision runs them every time; building them cost more than running).
_LOCK = (
    select(Entitlement)
    .where(Entitlement.id == bindparam("entitlement"))
    .with_for_update()
    .execution_options(populate_existing=True)
)
_NAMED = (
    select(Deployment.id)
    .where(Deployment.entitlement_id == bindparam("entitlement"), Deployment.name == bindparam("name"))
    .scalar_subquery()
)
_HOLDING = (
    Lease.entitlement_id == bindparam("entitlement"),
    Lease.status == LeaseStatus.LIVE,
    Lease.expires_at > bindparam("now"),
)
#: (the deployment's id or NULL, distinct deployments holding a live lease, whether this one holds one)
_SEAT = select(
    _NAMED,
    select(func.count(distinct(Lease.deployment_id))).where(*_HOLDING).scalar_subquery(),
    exists().where(*_HOLDING, Lease.deployment_id == _NAMED),
)


def lock_entitlement(session: Session, entitlement_id: uuid.UUID) -> Entitlement:
    """Lock the entitlement row until the caller's transaction ends and read it afresh (``SELECT ... FOR UPDATE``),
    so a concurrent suspension or seat change is seen and every seat decision for it is made one at a time."""
    locked = session.scalars(_LOCK, {"entitlement": entitlement_id}).one_or_none()
    if locked is None:
        raise NotEntitled(Code.ENTITLEMENT_NOT_FOUND, "no such entitlement", actual=entitlement_id)
    return locked


@dataclass(frozen=True, slots=True)
class Seat:
    """A seat reserved for a deployment: ``new`` when the deployment does not exist yet (its id is chosen here)."""

    deployment_id: uuid.UUID
    new: bool


def reserve_seat(session: Session, locked: Entitlement, deployment_name: str, *, now: datetime) -> Seat:
    """Whether ``deployment_name`` may hold a seat of ``locked`` (locked by :func:`lock_entitlement` in this
    transaction); writes nothing. One statement reads the deployment's id, whether it already holds a live,
    unexpired lease (then it keeps its seat), and how many distinct deployments hold one; if none is free,
    ``entitlement.seats_exhausted``. A status other than ``active`` is ``entitlement.inactive``."""
    if locked.status != EntitlementStatus.ACTIVE:
        raise NotEntitled(
            Code.ENTITLEMENT_INACTIVE,
            "the entitlement is not active",
            expected=EntitlementStatus.ACTIVE.value,
            actual=locked.status.value,
        )
    existing, in_use, holds = session.execute(
        _SEAT, {"entitlement": locked.id, "name": deployment_name, "now": now}
    ).one()
    if not holds and (in_use or 0) >= locked.seats:
        raise NotEntitled(
            Code.ENTITLEMENT_SEATS_EXHAUSTED,
            "every seat of the entitlement is held by another deployment",
            expected=f"fewer than {locked.seats} deployments with live leases",
            actual=in_use,
        )
    return Seat(existing, False) if existing is not None else Seat(uuid.uuid4(), True)


def take_seat(session: Session, entitlement_id: uuid.UUID, name: str, seat: Seat, *, now: datetime) -> None:
    """Create the reserved deployment (``first_attested_at = now``) or touch it (``last_attested_at = now``): one
    INSERT or one UPDATE, sent now (rows that name the deployment may follow in the same flush)."""
    if seat.new:
        session.add(
            Deployment(
                id=seat.deployment_id,
                entitlement_id=entitlement_id,
                name=name,
                first_attested_at=now,
                last_attested_at=now,
            )
        )
        session.flush()
        return
    session.execute(
        update(Deployment)
        .where(Deployment.id == seat.deployment_id)
        .values(last_attested_at=now, first_attested_at=func.coalesce(Deployment.first_attested_at, now))
    )


def acquire_seat(session: Session, entitlement: Entitlement, deployment_name: str, *, now: datetime) -> Deployment:
    """The deployment ``deployment_name`` under ``entitlement``, created or touched, if it may hold a seat.

    1. Lock the entitlement row and re-read it (:func:`lock_entitlement`).
    2-3. :func:`reserve_seat`: a deployment already holding a live, unexpired lease keeps its seat; otherwise, if
       the number of distinct deployments holding one is ``>= seats``, ``entitlement.seats_exhausted``.
    4. Create the deployment or touch it (:func:`take_seat`), and flush.

    A rejected request creates and changes nothing, so a committed rejection leaves no phantom deployment. The
    decision flow runs the same steps but writes only once everything else has passed.
    """
    locked = lock_entitlement(session, entitlement.id)
    seat = reserve_seat(session, locked, deployment_name, now=now)
    take_seat(session, locked.id, deployment_name, seat, now=now)
    session.flush()
    deployment = session.get(Deployment, seat.deployment_id, populate_existing=True)
    if deployment is None:  # inserted or updated just above, in this transaction
        raise NotEntitled(Code.ENTITLEMENT_NOT_FOUND, "the deployment vanished", actual=deployment_name)
    return deployment
