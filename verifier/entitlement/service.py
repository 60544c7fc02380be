"""Licence checks and seat accounting for one entitlement.

:func:`check_entitlement` answers "may this request use this licence at all" (the customer is not suspended; the
entitlement's status, validity window, platform, model version, GPU count). :func:`acquire_seat` answers "is a
seat free for this deployment" and is race-free across workers: it locks the entitlement row (``SELECT ... FOR
UPDATE``, and the customer row ``FOR SHARE``), so every seat decision for one entitlement is made one at a time,
each sees the leases committed by the decisions before it, and a concurrent suspension is seen.

A seat is one running enclave: a deployment holding a lease that is ``live`` and not yet expired. A deployment
holds at most one: a new lease for a deployment supersedes the live lease(s) it holds (:func:`take_seat` revokes
them, ``ended_at = now``), so the superseded enclave cannot renew and the deployment keeps its one seat. The caller
owns the session: it must insert the new lease in the *same* transaction as :func:`acquire_seat` and commit; the
row lock is held until then. Nothing here commits. Rejections raise :class:`~verifier.errors.NotEntitled` with an
``entitlement.*`` code.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, distinct, exists, func, select, update
from sqlalchemy.orm import Session

from verifier.db.models import Customer, CustomerStatus, Deployment, Entitlement, EntitlementStatus, Lease, LeaseStatus
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
    if there is none, ``entitlement.customer_suspended`` if its customer is suspended, then the rules of
    :func:`check_entitlement_rules`, in their order). Reads entitlement and customer status in one statement."""
    row = session.execute(_READ, {"entitlement": entitlement_id}).one_or_none()
    if row is None:
        raise NotEntitled(Code.ENTITLEMENT_NOT_FOUND, "no such entitlement", actual=entitlement_id)
    entitlement, customer_status = row
    _check_customer(customer_status)
    check_entitlement_rules(entitlement, platform=platform, model_version=model_version, gpus=gpus, now=now)
    return entitlement


def check_entitlement_rules(
    entitlement: Entitlement, *, platform: str | Sequence[str], model_version: str, gpus: int, now: datetime
) -> None:
    """Raise on the first rule ``entitlement`` breaks for this request, in this order (no I/O). Its customer's
    status is checked before these, where the entitlement is read (:func:`check_entitlement`,
    :func:`lock_entitlement`: ``entitlement.customer_suspended``).

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


# The seat path's statements, built once (a decision runs them every time; building them cost more than running).
#: (the entitlement, its customer's status); parameter: entitlement.
_READ = (
    select(Entitlement, Customer.status)
    .join(Customer, Customer.id == Entitlement.customer_id)
    .where(Entitlement.id == bindparam("entitlement"))
)
#: The same, the entitlement row locked ``FOR UPDATE`` and the customer row ``FOR SHARE``, both read afresh. The
#: share lock makes a customer's suspension (an UPDATE of its row) wait for decisions in flight and the decisions
#: after it see the new status (PostgreSQL re-reads a locked row that changed while it waited; a column of a row
#: merely joined would come from the statement's snapshot, taken before the wait). SQLite ignores both: its
#: transactions take the database's write lock when they begin.
_LOCK = (
    _READ.with_for_update(of=Entitlement)
    .suffix_with("FOR SHARE OF customers", dialect="postgresql")
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
#: Touch an existing deployment; parameters: deployment, now. These UPDATEs leave rows already loaded in the session
#: as they are (``synchronize_session=False``: the ORM cannot evaluate bind parameters; a decision loads none).
_TOUCH = (
    update(Deployment)
    .where(Deployment.id == bindparam("deployment"))
    .values(
        last_attested_at=bindparam("now"),
        first_attested_at=func.coalesce(Deployment.first_attested_at, bindparam("now")),
    )
    .execution_options(synchronize_session=False)
)
#: Supersede the deployment's live, unexpired leases: revoked, ended now; returns their ids. Leases already past
#: ``expires_at`` are left to the expiry job (they are ``expired``, not superseded).
_SUPERSEDE = (
    update(Lease)
    .where(
        Lease.deployment_id == bindparam("deployment"),
        Lease.status == LeaseStatus.LIVE,
        Lease.expires_at > bindparam("now"),
    )
    .values(status=LeaseStatus.REVOKED, ended_at=bindparam("now"))
    .returning(Lease.id)
    .execution_options(synchronize_session=False)
)
#: Both in one round trip on PostgreSQL (a data-modifying CTE runs whether or not the statement reads it).
_TOUCH_AND_SUPERSEDE = _SUPERSEDE.add_cte(_TOUCH.cte("touched"))


def lock_entitlement(session: Session, entitlement_id: uuid.UUID) -> Entitlement:
    """Lock the entitlement row until the caller's transaction ends and read it afresh (``SELECT ... FOR UPDATE``,
    its customer's row ``FOR SHARE``, in one statement), so a concurrent suspension or seat change is seen and every
    seat decision for it is made one at a time. ``entitlement.not_found`` if there is none,
    ``entitlement.customer_suspended`` if its customer is suspended (the lock is held either way)."""
    row = session.execute(_LOCK, {"entitlement": entitlement_id}).one_or_none()
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


def reserve_seat(session: Session, locked: Entitlement, deployment_name: str, *, now: datetime) -> Seat:
    """Whether ``deployment_name`` may hold a seat of ``locked`` (locked by :func:`lock_entitlement` in this
    transaction); writes nothing. One statement reads the deployment's id, whether it already holds a live,
    unexpired lease (then it keeps its seat: :func:`take_seat` supersedes that lease with the new one), and how
    many distinct deployments hold one; if none is free, ``entitlement.seats_exhausted``. A status other than
    ``active`` is ``entitlement.inactive``."""
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


def take_seat(session: Session, entitlement_id: uuid.UUID, name: str, seat: Seat, *, now: datetime) -> list[uuid.UUID]:
    """Create the reserved deployment (``first_attested_at = now``), or touch it (``last_attested_at = now``) and
    supersede the live, unexpired leases it holds (``revoked``, ``ended_at = now``): the new lease the caller adds
    next is then the deployment's only live one, and the superseded enclaves' renewals fail. Returns the
    superseded leases' ids, for the caller's audit event. Call it under :func:`lock_entitlement`'s lock, before
    adding the new lease. One INSERT, or one UPDATE with a CTE on PostgreSQL (two UPDATEs on SQLite), sent now
    (rows that name the deployment may follow in the same flush)."""
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
        return []
    params = {"deployment": seat.deployment_id, "now": now}
    if session.get_bind().dialect.name == "postgresql":
        return list(session.scalars(_TOUCH_AND_SUPERSEDE, params))
    session.execute(_TOUCH, params)
    return list(session.scalars(_SUPERSEDE, params))


def acquire_seat(session: Session, entitlement: Entitlement, deployment_name: str, *, now: datetime) -> Deployment:
    """The deployment ``deployment_name`` under ``entitlement``, created or touched, if it may hold a seat.

    1. Lock the entitlement row and re-read it (:func:`lock_entitlement`).
    2-3. :func:`reserve_seat`: a deployment already holding a live, unexpired lease keeps its seat; otherwise, if
       the number of distinct deployments holding one is ``>= seats``, ``entitlement.seats_exhausted``.
    4. Create the deployment, or touch it and supersede the lease it holds (:func:`take_seat`), and flush; the
       caller adds the new lease.

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
