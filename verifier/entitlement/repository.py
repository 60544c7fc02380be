"""All SQL of the licensing domain: customers, entitlements and deployments, including the seat path's statements.

The seat statements are built once at import: a decision runs them every time, and building them cost more than
running them (README bench). They are the entitlement lock (``FOR UPDATE``, its customer ``FOR SHARE``), the seat
count, and the deployment touch with the supersession of its live leases (one round trip on PostgreSQL). The
caller owns the session and the transaction; nothing here commits. Rules (what a status may become, who may hold
a seat) are in :mod:`verifier.entitlement.service` and :mod:`verifier.entitlement.licensing`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, distinct, exists, func, insert, literal, select, true, update
from sqlalchemy.orm import Session

from verifier.db.models import (
    Attestation,
    AttestationStatus,
    Customer,
    CustomerStatus,
    Deployment,
    Entitlement,
    Lease,
    LeaseStatus,
)
from verifier.db.queries import equals, page
from verifier.db.rows import entity, table

# -- the seat path (built once) ---------------------------------------------------------------------------------

_ENTITLEMENTS = table(Entitlement)
_CUSTOMERS = table(Customer)
_DEPLOYMENTS = table(Deployment)
_LEASES = table(Lease)

#: (the entitlement's columns, its customer's status as ``customer_status``), the entitlement row locked
#: ``FOR UPDATE`` and the customer row ``FOR SHARE``, both read afresh; parameter: entitlement. The share lock makes
#: a customer's suspension (an UPDATE of its row) wait for decisions in flight and the decisions after it see the
#: new status (PostgreSQL re-reads a locked row that changed while it waited; a column of a row merely joined would
#: come from the statement's snapshot, taken before the wait). SQLite ignores both: its transactions take the
#: database's write lock when they begin.
_LOCK = (
    select(_ENTITLEMENTS, _CUSTOMERS.c.status.label("customer_status"))
    .join(_CUSTOMERS, _CUSTOMERS.c.id == _ENTITLEMENTS.c.customer_id)
    .where(_ENTITLEMENTS.c.id == bindparam("entitlement"))
    .with_for_update(of=_ENTITLEMENTS)
    .suffix_with("FOR SHARE OF customers", dialect="postgresql")
)
_NAMED = (
    select(_DEPLOYMENTS.c.id)
    .where(_DEPLOYMENTS.c.entitlement_id == bindparam("entitlement"), _DEPLOYMENTS.c.name == bindparam("name"))
    .scalar_subquery()
)
_HOLDING = (
    _LEASES.c.entitlement_id == bindparam("entitlement"),
    _LEASES.c.status == LeaseStatus.LIVE.value,
    _LEASES.c.expires_at > bindparam("now"),
)
_SUSPENDED = (
    select(_DEPLOYMENTS.c.suspended_at)
    .where(_DEPLOYMENTS.c.entitlement_id == bindparam("entitlement"), _DEPLOYMENTS.c.name == bindparam("name"))
    .scalar_subquery()
)
#: (the deployment's id or NULL, distinct deployments holding a live lease, whether this one holds one, when staff
#: suspended it or NULL)
_SEAT = select(
    _NAMED,
    select(func.count(distinct(_LEASES.c.deployment_id))).where(*_HOLDING).scalar_subquery(),
    exists().where(*_HOLDING, _LEASES.c.deployment_id == _NAMED),
    _SUSPENDED,
)
_ATTESTATIONS = table(Attestation)
#: The newest accepted ``attest`` request of the deployment that arrived after ``arrived`` (real time, as
#: ``created_at``): (id, created_at, lease id); ``since`` (at or before that arrival, on the decision clock) only
#: bounds the read to the index ``(entitlement_id, deployment_name, decided_at)``. Its evidence is not read.
_NEWER = (
    select(_ATTESTATIONS.c.id, _ATTESTATIONS.c.created_at, _ATTESTATIONS.c.lease_id)
    .where(
        _ATTESTATIONS.c.entitlement_id == bindparam("entitlement"),
        _ATTESTATIONS.c.deployment_name == bindparam("name"),
        _ATTESTATIONS.c.decided_at >= bindparam("since"),
        _ATTESTATIONS.c.status == AttestationStatus.ACCEPTED.value,
        _ATTESTATIONS.c.kind == "attest",
        _ATTESTATIONS.c.created_at > bindparam("arrived"),
    )
    .order_by(_ATTESTATIONS.c.created_at.desc())
    .limit(1)
    .subquery("newer")
)
#: :data:`_SEAT`, then :data:`_NEWER`'s columns (NULL when there is none), in one statement.
_SEAT_AND_NEWER = select(*_SEAT.selected_columns, *_NEWER.c).select_from(
    select(literal(1).label("one")).subquery("one").outerjoin(_NEWER, true())
)
#: A new deployment (parameters: its columns).
_INSERT_DEPLOYMENT = insert(_DEPLOYMENTS)
#: Touch an existing deployment; parameters: deployment, now. Rows already loaded in the session stay as they are.
_TOUCH = (
    update(_DEPLOYMENTS)
    .where(_DEPLOYMENTS.c.id == bindparam("deployment"))
    .values(
        last_attested_at=bindparam("now"),
        first_attested_at=func.coalesce(_DEPLOYMENTS.c.first_attested_at, bindparam("now")),
    )
)
#: Supersede the deployment's live, unexpired leases: revoked, ended now; returns their ids. Leases already past
#: ``expires_at`` are left to the expiry job (they are ``expired``, not superseded).
_SUPERSEDE = (
    update(_LEASES)
    .where(
        _LEASES.c.deployment_id == bindparam("deployment"),
        _LEASES.c.status == LeaseStatus.LIVE.value,
        _LEASES.c.expires_at > bindparam("now"),
    )
    .values(status=LeaseStatus.REVOKED.value, ended_at=bindparam("now"))
    .returning(_LEASES.c.id)
)
#: Both in one round trip on PostgreSQL (a data-modifying CTE runs whether or not the statement reads it).
_TOUCH_AND_SUPERSEDE = _SUPERSEDE.add_cte(_TOUCH.cte("touched"))


def lock_entitlement(session: Session, entitlement_id: uuid.UUID) -> tuple[Entitlement, CustomerStatus] | None:
    """(the entitlement, its customer's status), locked as :data:`_LOCK` says, in one Core statement (the session's
    instance refreshed, or an untracked one: :func:`verifier.db.rows.entity`); None if there is no entitlement."""
    row = session.execute(_LOCK, {"entitlement": entitlement_id}).one_or_none()
    if row is None:
        return None
    values = dict(row._mapping)
    customer_status = values.pop("customer_status")
    return entity(session, Entitlement, values), customer_status


def seat_holders(
    session: Session, entitlement_id: uuid.UUID, deployment_name: str, now: datetime
) -> tuple[uuid.UUID | None, int, bool, datetime | None]:
    """(the named deployment's id or None, distinct deployments holding a live unexpired lease, whether the named
    one holds one, when it was suspended or None), in one statement."""
    existing, in_use, holds, suspended_at = session.execute(
        _SEAT, {"entitlement": entitlement_id, "name": deployment_name, "now": now}
    ).one()
    return existing, int(in_use or 0), bool(holds), suspended_at


def seat_and_newer_grant(
    session: Session,
    entitlement_id: uuid.UUID,
    deployment_name: str,
    now: datetime,
    *,
    arrived: datetime,
    since: datetime,
) -> tuple[tuple[uuid.UUID | None, int, bool, datetime | None], tuple[uuid.UUID, datetime, uuid.UUID | None] | None]:
    """(:func:`seat_holders`, (id, ``created_at``, lease id) of the newest accepted ``attest`` request of the
    deployment that arrived after ``arrived``, decided since ``since``, or None), in one statement."""
    params = {"entitlement": entitlement_id, "name": deployment_name, "now": now, "arrived": arrived, "since": since}
    existing, in_use, holds, suspended_at, newer_id, newer_arrived, newer_lease = session.execute(
        _SEAT_AND_NEWER, params
    ).one()
    seat = (existing, int(in_use or 0), bool(holds), suspended_at)
    return seat, None if newer_id is None else (newer_id, newer_arrived, newer_lease)


def insert_deployment(session: Session, values: dict[str, Any]) -> None:
    """Insert a deployment of ``values`` now, in one Core statement (rows that name it may follow)."""
    session.execute(_INSERT_DEPLOYMENT, values)


def touch_and_supersede(session: Session, deployment_id: uuid.UUID, now: datetime) -> list[uuid.UUID]:
    """Touch the deployment (``last_attested_at = now``) and supersede its live, unexpired leases (``revoked``,
    ``ended_at = now``); the superseded ids. One UPDATE with a CTE on PostgreSQL, two UPDATEs on SQLite."""
    params = {"deployment": deployment_id, "now": now}
    if session.get_bind().dialect.name == "postgresql":
        return list(session.scalars(_TOUCH_AND_SUPERSEDE, params))
    session.execute(_TOUCH, params)
    return list(session.scalars(_SUPERSEDE, params))


# -- staff reads and writes -------------------------------------------------------------------------------------


def list_customers(session: Session, *, limit: int, offset: int) -> list[Customer]:
    return page(session, select(Customer).order_by(Customer.created_at, Customer.id), limit=limit, offset=offset)


def list_entitlements(
    session: Session, *, customer_id: uuid.UUID | None, model_id: uuid.UUID | None, limit: int, offset: int
) -> list[Entitlement]:
    return page(
        session,
        select(Entitlement).order_by(Entitlement.created_at, Entitlement.id),
        where=(equals(Entitlement.customer_id, customer_id), equals(Entitlement.model_id, model_id)),
        limit=limit,
        offset=offset,
    )


def list_deployments(
    session: Session, *, entitlement_id: uuid.UUID | None, limit: int, offset: int
) -> list[Deployment]:
    return page(
        session,
        select(Deployment).order_by(Deployment.name, Deployment.id),
        where=(equals(Deployment.entitlement_id, entitlement_id),),
        limit=limit,
        offset=offset,
    )


def deployment_name(session: Session, deployment_id: uuid.UUID) -> str | None:
    return session.scalar(select(Deployment.name).where(Deployment.id == deployment_id))
