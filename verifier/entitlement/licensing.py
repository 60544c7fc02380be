"""Staff changes to licences: customers and entitlements, and cutting a customer off through their status rules.

Status transitions are the domain's: an entitlement's suspension can be lifted and its revocation is final
(:data:`ENTITLEMENT_TRANSITIONS`); a customer goes between ``active`` and ``suspended``
(:data:`CUSTOMER_TRANSITIONS`); a deployment is suspended or reinstated at will (:func:`set_deployment_suspended`).
Suspending or revoking an entitlement, or suspending a customer or a deployment, revokes the live leases under it
in the same transaction (each audited ``admin:lease:revoked`` with the reason, by
:func:`~verifier.attestation.leases.revoke_live_leases`), so their renewals fail. The row whose status changes
is locked first (``SELECT ... FOR UPDATE``): a decision in flight holds the entitlement lock and a share lock on
the customer until it commits, so the status change waits for it and then revokes the lease it issued, and a
decision after it sees the new status and is rejected.

Takes the caller's session, the acting staff member and ``now``; never commits. The SQL is in
:mod:`verifier.entitlement.repository`; HTTP is in :mod:`verifier.api.admin.licensing`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from pydantic_core import to_jsonable_python
from sqlalchemy.orm import Session

from verifier.attestation.leases import revoke_live_leases
from verifier.audit.log import AuditTag, Entry, record_event, record_events
from verifier.catalog.service import check_window
from verifier.db.models import (
    AppraisalPolicy,
    Customer,
    CustomerStatus,
    Deployment,
    Entitlement,
    EntitlementStatus,
    Model,
)
from verifier.db.queries import get_or_404, insert_unique
from verifier.entitlement import repository
from verifier.errors import Code, Conflict

#: Allowed entitlement status changes: suspension can be lifted, revocation is final.
ENTITLEMENT_TRANSITIONS: dict[EntitlementStatus, frozenset[EntitlementStatus]] = {
    EntitlementStatus.ACTIVE: frozenset({EntitlementStatus.SUSPENDED, EntitlementStatus.REVOKED}),
    EntitlementStatus.SUSPENDED: frozenset({EntitlementStatus.ACTIVE, EntitlementStatus.REVOKED}),
    EntitlementStatus.REVOKED: frozenset(),
}
#: Allowed customer status changes: suspended and reinstated at will.
CUSTOMER_TRANSITIONS: dict[CustomerStatus, frozenset[CustomerStatus]] = {
    CustomerStatus.ACTIVE: frozenset({CustomerStatus.SUSPENDED}),
    CustomerStatus.SUSPENDED: frozenset({CustomerStatus.ACTIVE}),
}

_S = TypeVar("_S", bound=StrEnum)


def check_transition(what: str, before: _S, after: _S, allowed: dict[_S, frozenset[_S]]) -> None:
    """``resource.conflict`` unless ``after`` is ``before`` or a change ``allowed`` permits."""
    if after != before and after not in allowed[before]:
        raise Conflict(
            Code.RESOURCE_CONFLICT,
            f"{what} cannot go from {before.value} to {after.value}",
            expected=" | ".join(sorted(s.value for s in allowed[before])) or "(none)",
            actual=after.value,
        )


# -- customers ---------------------------------------------------------------------------------------------------


def create_customer(session: Session, *, name: str, status: CustomerStatus, actor: str, now: datetime) -> Customer:
    """A new customer (``resource.conflict`` if the name is taken), audited ``admin:customer:created``."""
    customer = Customer(name=name, status=status, created_at=now)
    insert_unique(session, customer, "a customer with this name")
    record_event(
        session,
        tag=AuditTag.CUSTOMER_CREATED,
        actor=actor,
        subject_type="customer",
        subject_id=str(customer.id),
        data={"name": name, "status": status.value},
        at=now,
    )
    return customer


def get_customer(session: Session, customer_id: uuid.UUID) -> Customer:
    return get_or_404(session, Customer, customer_id, "customer")


def change_customer_status(
    session: Session, customer_id: uuid.UUID, status: CustomerStatus, *, actor: str, now: datetime
) -> Customer:
    """Suspend or reinstate a customer. Suspended: its licence keys are refused (``auth.customer_suspended``),
    decisions for its entitlements are rejected (``entitlement.customer_suspended``) and the live leases of all its
    entitlements are revoked now. Audited ``admin:customer:status_changed`` with the revoked leases."""
    customer = get_or_404(session, Customer, customer_id, "customer", lock=True)
    before = customer.status
    check_transition("a customer", before, status, CUSTOMER_TRANSITIONS)
    customer.status = status
    session.flush()
    revoked = (
        revoke_live_leases(session, customer_id=customer.id, now=now, actor=actor, reason="customer suspended")
        if status == CustomerStatus.SUSPENDED
        else []
    )
    _record_status_change(session, actor, "customer", customer.id, before, status, revoked, now)
    return customer


# -- entitlements ------------------------------------------------------------------------------------------------


def create_entitlement(
    session: Session,
    *,
    customer_id: uuid.UUID,
    model_id: uuid.UUID,
    allowed_versions: Sequence[str],
    allowed_platforms: Sequence[str],
    seats: int,
    max_gpus: int,
    lease_ttl_seconds: int,
    policy_id: uuid.UUID | None,
    status: EntitlementStatus,
    valid_from: datetime | None,
    valid_until: datetime | None,
    actor: str,
    now: datetime,
) -> Entitlement:
    """A new entitlement of an existing customer, model and policy (404 otherwise; ``valid_from`` defaults to
    ``now``, repeated platforms are kept once), audited ``admin:entitlement:created`` with its terms.
    ``request.invalid`` if its validity window is empty (``valid_until`` not after ``valid_from``, or after now when
    ``valid_from`` is omitted)."""
    check_window(valid_from or now, valid_until)
    get_or_404(session, Customer, customer_id, "customer")
    get_or_404(session, Model, model_id, "model")
    if policy_id is not None:
        get_or_404(session, AppraisalPolicy, policy_id, "policy")
    entitlement = Entitlement(
        customer_id=customer_id,
        model_id=model_id,
        allowed_versions=list(allowed_versions),
        allowed_platforms=list(dict.fromkeys(allowed_platforms)),
        seats=seats,
        max_gpus=max_gpus,
        lease_ttl_seconds=lease_ttl_seconds,
        policy_id=policy_id,
        status=status,
        valid_from=valid_from or now,
        valid_until=valid_until,
        created_at=now,
    )
    insert_unique(session, entitlement, "this entitlement")
    record_event(
        session,
        tag=AuditTag.ENTITLEMENT_CREATED,
        actor=actor,
        subject_type="entitlement",
        subject_id=str(entitlement.id),
        data=_terms(entitlement),
        at=now,
    )
    return entitlement


def _terms(entitlement: Entitlement) -> dict[str, object]:
    """The entitlement's terms as JSON values (everything but its id and ``created_at``), as the event records."""
    terms = {
        "customer_id": entitlement.customer_id,
        "model_id": entitlement.model_id,
        "allowed_versions": entitlement.allowed_versions,
        "allowed_platforms": entitlement.allowed_platforms,
        "seats": entitlement.seats,
        "max_gpus": entitlement.max_gpus,
        "lease_ttl_seconds": entitlement.lease_ttl_seconds,
        "policy_id": entitlement.policy_id,
        "status": entitlement.status,
        "valid_from": entitlement.valid_from,
        "valid_until": entitlement.valid_until,
    }
    jsonable: dict[str, object] = to_jsonable_python(terms)
    return jsonable


def change_entitlement_status(
    session: Session, entitlement_id: uuid.UUID, status: EntitlementStatus, *, actor: str, now: datetime
) -> Entitlement:
    """``active`` <-> ``suspended``, either -> ``revoked`` (final; ``resource.conflict`` otherwise), the row locked.
    Leaving it anything but ``active`` revokes its live leases now. Audited ``admin:entitlement:status_changed``
    with the revoked leases. Repeating the current status records nothing, unless it finds a live lease left to
    revoke."""
    entitlement = get_or_404(session, Entitlement, entitlement_id, "entitlement", lock=True)
    before = entitlement.status
    check_transition("an entitlement", before, status, ENTITLEMENT_TRANSITIONS)
    entitlement.status = status
    session.flush()
    revoked = (
        []
        if status == EntitlementStatus.ACTIVE
        else revoke_live_leases(
            session, entitlement_id=entitlement.id, now=now, actor=actor, reason=f"entitlement {status.value}"
        )
    )
    _record_status_change(session, actor, "entitlement", entitlement.id, before, status, revoked, now)
    return entitlement


# -- deployments -------------------------------------------------------------------------------------------------


def set_deployment_suspended(
    session: Session, deployment_id: uuid.UUID, suspended: bool, *, actor: str, now: datetime
) -> Deployment:
    """Suspend a deployment (``suspended_at = now``) or reinstate it (``None``). Suspended: its live lease is revoked
    now and every new lease for it is refused (``entitlement.deployment_suspended``), until it is reinstated; its
    entitlement's other deployments are untouched. Audited ``admin:deployment:status_changed`` (``from``/``to``:
    ``active`` or ``suspended``) with the revoked leases, each also ``admin:lease:revoked``. Suspending a suspended
    deployment keeps its first ``suspended_at`` and records nothing, unless it finds a live lease left to revoke.
    ``resource.not_found`` if there is no such deployment.

    The entitlement row is locked first, as every decision for the deployment locks it: a decision in flight
    commits its lease before this revokes it, and a decision after this sees the suspension."""
    found = get_or_404(session, Deployment, deployment_id, "deployment")
    repository.lock_entitlement(session, found.entitlement_id)
    deployment = get_or_404(session, Deployment, deployment_id, "deployment", lock=True)
    before = "active" if deployment.suspended_at is None else "suspended"
    after = "suspended" if suspended else "active"
    if before != after:
        deployment.suspended_at = now if suspended else None
        session.flush()
    revoked = (
        revoke_live_leases(session, deployment_id=deployment.id, now=now, actor=actor, reason="deployment suspended")
        if suspended
        else []
    )
    if before != after or revoked:
        change = Entry(
            AuditTag.DEPLOYMENT_STATUS_CHANGED,
            actor,
            "deployment",
            str(deployment.id),
            {
                "from": before,
                "to": after,
                "entitlement_id": str(deployment.entitlement_id),
                "revoked_leases": [e.subject_id for e in revoked],
            },
        )
        record_events(session, [change, *revoked], at=now)
    return deployment


def _record_status_change(
    session: Session,
    actor: str,
    subject_type: str,
    subject_id: uuid.UUID,
    before: EntitlementStatus | CustomerStatus,
    after: EntitlementStatus | CustomerStatus,
    revoked: list[Entry],
    now: datetime,
) -> None:
    """One event for the status change, then one per revoked lease; nothing when nothing changed."""
    if before == after and not revoked:
        return
    tag = AuditTag.ENTITLEMENT_STATUS_CHANGED if subject_type == "entitlement" else AuditTag.CUSTOMER_STATUS_CHANGED
    change = Entry(
        tag,
        actor,
        subject_type,
        str(subject_id),
        {"from": before.value, "to": after.value, "revoked_leases": [e.subject_id for e in revoked]},
    )
    record_events(session, [change, *revoked], at=now)
