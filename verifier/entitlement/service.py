"""Licence checks and seat accounting for one entitlement: the rules a decision applies, over the statements of
:mod:`verifier.entitlement.repository`.

:func:`lock_entitlement` locks the entitlement row (``SELECT ... FOR UPDATE``, and the customer row ``FOR SHARE``)
and refuses a suspended customer, so every seat decision for one entitlement is made one at a time, each sees the
leases committed by the decisions before it, and a concurrent suspension is seen. :func:`check_entitlement_rules`
answers "may this request use this licence at all" (status, validity window, platform, model version, GPU count).
:func:`reserve_seat` answers "is a seat free for this deployment" and writes nothing; :func:`take_seat` writes it.

A seat is one running enclave: a deployment holding a lease that is ``live`` and not yet expired. A deployment
holds at most one: a new lease for a deployment supersedes the live lease(s) it holds (:func:`take_seat` revokes
them, ``ended_at = now``), so the superseded enclave cannot renew and the deployment keeps its one seat. The caller
owns the session: it must insert the new lease in the *same* transaction as :func:`lock_entitlement` and commit;
the row lock is held until then (:func:`verifier.attestation.leases.issue_lease` takes the seat and adds the lease).
Nothing here commits or holds SQL. Rejections raise :class:`~verifier.errors.NotEntitled` with an
``entitlement.*`` code.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from verifier.db.models import CustomerStatus, Entitlement, EntitlementStatus
from verifier.entitlement import repository
from verifier.errors import Code, Conflict, NotEntitled


def check_entitlement_rules(
    entitlement: Entitlement, *, platform: str | Sequence[str], model_version: str, gpus: int, now: datetime
) -> None:
    """Raise on the first rule ``entitlement`` breaks for this request, in this order (no I/O). Its customer's
    status is checked before these, where the entitlement is read and locked (:func:`lock_entitlement`:
    ``entitlement.customer_suspended``).

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


def _check_customer(status: CustomerStatus) -> None:
    if status != CustomerStatus.ACTIVE:
        raise NotEntitled(
            Code.ENTITLEMENT_CUSTOMER_SUSPENDED,
            "the customer holding the entitlement is suspended",
            expected=CustomerStatus.ACTIVE.value,
            actual=status.value,
        )


def lock_entitlement(session: Session, entitlement_id: uuid.UUID) -> Entitlement:
    """Lock the entitlement row until the caller's transaction ends and read it afresh (``SELECT ... FOR UPDATE``,
    its customer's row ``FOR SHARE``, in one statement), so a concurrent suspension or seat change is seen and every
    seat decision for it is made one at a time. ``entitlement.not_found`` if there is none,
    ``entitlement.customer_suspended`` if its customer is suspended (the lock is held either way)."""
    row = repository.lock_entitlement(session, entitlement_id)
    if row is None:
        raise NotEntitled(Code.ENTITLEMENT_NOT_FOUND, "no such entitlement", actual=entitlement_id)
    locked, customer_status = row
    _check_customer(customer_status)
    return locked


@dataclass(frozen=True, slots=True)
class Seat:
    """A seat reserved for a deployment: ``new`` when the deployment does not exist yet (its id is chosen here)."""

    deployment_id: uuid.UUID
    new: bool


def reserve_seat(
    session: Session,
    locked: Entitlement,
    deployment_name: str,
    *,
    now: datetime,
    newer_than: tuple[datetime, datetime] | None = None,
) -> Seat:
    """Whether ``deployment_name`` may hold a seat of ``locked`` (locked by :func:`lock_entitlement` in this
    transaction); writes nothing. One statement reads the deployment's id, whether it already holds a live,
    unexpired lease (then it keeps its seat: :func:`take_seat` supersedes that lease with the new one), and how
    many distinct deployments hold one; if none is free, ``entitlement.seats_exhausted``. A status other than
    ``active`` is ``entitlement.inactive``; a deployment staff suspended is ``entitlement.deployment_suspended``.

    ``newer_than``: (when the request arrived, real time as ``created_at``; a bound at or before it on the decision
    clock): the same statement also reads the newest accepted new-lease request of the deployment that arrived
    after it; if there is one, ``attestation.superseded_by_newer``, checked first: a late request never displaces
    the lease of a newer one, whatever order the two were decided in (the lock makes every grant for the
    deployment committed and visible)."""
    if locked.status != EntitlementStatus.ACTIVE:
        raise NotEntitled(
            Code.ENTITLEMENT_INACTIVE,
            "the entitlement is not active",
            expected=EntitlementStatus.ACTIVE.value,
            actual=locked.status.value,
        )
    if newer_than is None:
        seat = repository.seat_holders(session, locked.id, deployment_name, now)
    else:
        arrived, since = newer_than
        seat, newer = repository.seat_and_newer_grant(
            session, locked.id, deployment_name, now, arrived=arrived, since=since
        )
        if newer is not None:
            newer_id, newer_arrived, newer_lease = newer
            raise Conflict(
                Code.ATTESTATION_SUPERSEDED_BY_NEWER,
                "the deployment holds a lease granted to a request that arrived after this one; attest again to "
                "replace it",
                expected=f"no request of the deployment accepted after this one arrived ({arrived.isoformat()})",
                actual=f"attestation {newer_id} arrived {newer_arrived.isoformat()}, lease {newer_lease}",
            )
    existing, in_use, holds, suspended_at = seat
    if suspended_at is not None:
        raise NotEntitled(
            Code.ENTITLEMENT_DEPLOYMENT_SUSPENDED,
            "staff suspended this deployment; it gets no lease until it is reinstated",
            expected="not suspended",
            actual=f"suspended at {suspended_at.isoformat()}",
        )
    if not holds and in_use >= locked.seats:
        raise NotEntitled(
            Code.ENTITLEMENT_SEATS_EXHAUSTED,
            "every seat of the entitlement is held by another deployment",
            expected=f"fewer than {locked.seats} deployments with live leases",
            actual=in_use,
        )
    return Seat(existing, False) if existing is not None else Seat(uuid.uuid4(), True)


def take_seat(session: Session, entitlement_id: uuid.UUID, name: str, seat: Seat, *, now: datetime) -> list[uuid.UUID]:
    """Create the reserved deployment (``first_attested_at = now``), or touch it (``last_attested_at = now``) and
    supersede the live, unexpired leases it holds (``revoked``, ``ended_at = now``): the new lease the caller adds
    next is then the deployment's only live one, and the superseded enclaves' renewals fail. Returns the
    superseded leases' ids, for the caller's audit event. Call it under :func:`lock_entitlement`'s lock, before
    adding the new lease. One INSERT, or one UPDATE with a CTE on PostgreSQL (two UPDATEs on SQLite), sent now
    (rows that name the deployment may follow in the same flush)."""
    if seat.new:
        repository.insert_deployment(
            session,
            {
                "id": seat.deployment_id,
                "entitlement_id": entitlement_id,
                "name": name,
                "first_attested_at": now,
                "last_attested_at": now,
            },
        )
        return []
    return repository.touch_and_supersede(session, seat.deployment_id, now)
