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
from dataclasses import dataclass
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
from verifier.db.queries import clash_is_conflict, get_or_404, insert_unique
from verifier.entitlement import repository
from verifier.errors import Code, Conflict, UsageError

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


def rename_customer(session: Session, customer_id: uuid.UUID, name: str, *, actor: str, now: datetime) -> Customer:
    """A customer's new name (``resource.conflict`` if another customer has it; the same name changes nothing),
    the row locked, audited ``admin:customer:renamed`` with both names."""
    customer = get_or_404(session, Customer, customer_id, "customer", lock=True)
    before = customer.name
    if name == before:
        return customer
    with clash_is_conflict("a customer with this name already exists"), session.begin_nested():
        customer.name = name
    record_event(
        session,
        tag=AuditTag.CUSTOMER_RENAMED,
        actor=actor,
        subject_type="customer",
        subject_id=str(customer.id),
        data={"from": before, "to": name},
        at=now,
    )
    return customer


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


@dataclass(frozen=True, slots=True)
class EntitlementTerms:
    """What staff may change of an entitlement after it is created (its customer and model stay)."""

    allowed_versions: tuple[str, ...]
    allowed_platforms: tuple[str, ...]
    seats: int
    max_gpus: int
    lease_ttl_seconds: int
    policy_id: uuid.UUID | None
    valid_from: datetime
    valid_until: datetime | None


def entitlement_terms(session: Session, entitlement_id: uuid.UUID) -> EntitlementTerms:
    """The entitlement's current terms (404 if there is none)."""
    e = get_or_404(session, Entitlement, entitlement_id, "entitlement")
    return EntitlementTerms(
        allowed_versions=tuple(e.allowed_versions),
        allowed_platforms=tuple(e.allowed_platforms),
        seats=e.seats,
        max_gpus=e.max_gpus,
        lease_ttl_seconds=e.lease_ttl_seconds,
        policy_id=e.policy_id,
        valid_from=e.valid_from,
        valid_until=e.valid_until,
    )


def change_entitlement_terms(
    session: Session, entitlement_id: uuid.UUID, terms: EntitlementTerms, *, actor: str, now: datetime
) -> Entitlement:
    """New terms for an entitlement that is not revoked (``resource.conflict`` otherwise), the row locked; the
    policy must exist (404) and the window must not be empty (``usage.invalid``). They rule the decisions from now
    on: live leases keep running to their expiry (a lease is never cut short by an edit; staff revoke leases or
    suspend the entitlement for that), and fewer seats than are in use refuse new deployments until enough leases
    end. Audited ``admin:entitlement:terms_changed`` with each changed term before and after; an edit that changes
    nothing records nothing."""
    entitlement = get_or_404(session, Entitlement, entitlement_id, "entitlement", lock=True)
    if entitlement.status == EntitlementStatus.REVOKED:
        raise Conflict(
            Code.RESOURCE_CONFLICT, "a revoked entitlement's terms cannot change", actual=entitlement.status.value
        )
    if terms.policy_id is not None:
        get_or_404(session, AppraisalPolicy, terms.policy_id, "policy")
    if terms.valid_until is not None and terms.valid_until <= terms.valid_from:
        raise UsageError(
            Code.USAGE_INVALID,
            "the validity window is empty: valid_until must be after valid_from",
            expected=f"> {terms.valid_from.isoformat()}",
            actual=terms.valid_until.isoformat(),
        )
    before = _terms(entitlement)
    entitlement.allowed_versions = list(dict.fromkeys(terms.allowed_versions))
    entitlement.allowed_platforms = list(dict.fromkeys(terms.allowed_platforms))
    entitlement.seats, entitlement.max_gpus = terms.seats, terms.max_gpus
    entitlement.lease_ttl_seconds, entitlement.policy_id = terms.lease_ttl_seconds, terms.policy_id
    entitlement.valid_from, entitlement.valid_until = terms.valid_from, terms.valid_until
    session.flush()
    after = _terms(entitlement)
    changed = sorted(k for k in after if after[k] != before[k])
    if changed:
        record_event(
            session,
            tag=AuditTag.ENTITLEMENT_TERMS_CHANGED,
            actor=actor,
            subject_type="entitlement",
            subject_id=str(entitlement.id),
            data={"before": {k: before[k] for k in changed}, "after": {k: after[k] for k in changed}},
            at=now,
        )
    return entitlement


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
